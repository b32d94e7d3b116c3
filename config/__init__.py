"""Project configuration: settings, URLs, ASGI routing, the Celery app, the dev launcher.

`config.api` is the one leaf module the apps import (error envelope, pagination, idempotency);
everything else in this package sits on top of the apps and is imported by nobody.
"""

from .celery import app as celery_app

__all__ = ["celery_app"]

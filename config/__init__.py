"""Project configuration: settings, URLs, ASGI routing, the Celery app, the dev launcher.

Two layers live here: `config.core`, the bottom layer every app imports (it imports no app),
and the project wiring on top of all apps (everything else), which no app imports.
"""

from .celery import app as celery_app

__all__ = ["celery_app"]

"""ASGI entry point: HTTP through Django, `/ws/` through Channels (uvicorn serves both)."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import path  # noqa: E402

from accounts.consumers import RealtimeConsumer, TokenAuthMiddleware  # noqa: E402

from .core.limits import BodyLimitMiddleware  # noqa: E402
from .origins import OriginValidator  # noqa: E402

websocket_urls = [path("ws/", RealtimeConsumer.as_asgi())]

application = ProtocolTypeRouter(
    {
        # Body limits are enforced here, before Django's handler reads (and spools) the body.
        "http": BodyLimitMiddleware(django_asgi_app),
        "websocket": OriginValidator(TokenAuthMiddleware(URLRouter(websocket_urls))),
    }
)

"""ASGI entry point: HTTP through Django, `/ws/` through Channels (uvicorn serves both)."""

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django.setup(set_prefix=False)

from .core.handlers import OneHopASGIHandler, settle_heap  # noqa: E402

# Django's ASGIHandler, with the middleware chain and view run in one thread hop.
django_asgi_app = OneHopASGIHandler()

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

# Last: what is loaded now lives as long as the process (config.core.handlers.settle_heap).
settle_heap()

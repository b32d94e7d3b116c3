"""Websocket origin check.

Browsers always send `Origin`; it must match ALLOWED_HOSTS or WEBSOCKET_ALLOWED_ORIGINS, or the
handshake is refused (cross-site websocket hijacking). Native mobile clients send no Origin and
authenticate with a bearer header, which a hostile web page cannot set, so they are let through.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from channels.security.websocket import WebsocketDenier
from django.conf import settings
from django.http.request import validate_host


class OriginValidator:
    def __init__(self, inner):
        self.inner = inner

    def _allowed(self, origin: str) -> bool:
        if origin in settings.WEBSOCKET_ALLOWED_ORIGINS:
            return True
        host = urlsplit(origin).hostname
        if not host:
            return False
        hosts = list(settings.ALLOWED_HOSTS)
        if settings.DEBUG and not hosts:
            hosts = ["localhost", "127.0.0.1", "[::1]"]
        return validate_host(host, hosts)

    async def __call__(self, scope, receive, send):
        headers = dict(scope.get("headers") or [])
        origin = headers.get(b"origin")
        if origin is not None and not self._allowed(origin.decode("latin-1")):
            denier = WebsocketDenier()
            return await denier(scope, receive, send)
        return await self.inner(scope, receive, send)

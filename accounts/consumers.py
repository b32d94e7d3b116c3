"""The one websocket, `/ws/`: server-to-client events for the signed-in user.

Authentication: `Authorization: Bearer <token>` on the upgrade request (mobile), or
`?ticket=` from `POST /realtime/ticket` (browsers), consumed on first use.
"""

from __future__ import annotations

from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.contrib.auth.models import AnonymousUser
from django.core.cache import cache

from .models import User
from .realtime import user_group
from .tokens import token_lookup

TICKET_PREFIX = "rt-ticket:"
CLOSE_UNAUTHENTICATED = 4401


@database_sync_to_async
def _user_from_token(raw: str):
    token = token_lookup(raw)
    return token.user if token else None


@database_sync_to_async
def _user_from_ticket(ticket: str):
    key = TICKET_PREFIX + ticket
    user_id = cache.get(key)
    if not user_id or not cache.delete(key):  # delete() is the one-time consume
        return None
    return User.objects.filter(pk=user_id, is_active=True).first()


class TokenAuthMiddleware:
    """Puts the authenticated user (or AnonymousUser) in `scope["user"]`."""

    def __init__(self, inner):
        self.inner = inner

    async def __call__(self, scope, receive, send):
        user = None
        headers = dict(scope.get("headers") or [])
        auth = headers.get(b"authorization", b"").decode("latin-1").split()
        if len(auth) == 2 and auth[0].lower() == "bearer":
            user = await _user_from_token(auth[1])
        else:
            ticket = parse_qs(scope.get("query_string", b"").decode()).get("ticket", [""])[0]
            if ticket:
                user = await _user_from_ticket(ticket[:100])
        scope = dict(scope, user=user or AnonymousUser())
        return await self.inner(scope, receive, send)


class RealtimeConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self):
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        self.group = user_group(user.pk)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        await self.send_json({"type": "hello", "user_id": str(user.pk)})

    async def disconnect(self, code):
        group = getattr(self, "group", None)
        if group:
            await self.channel_layer.group_discard(group, self.channel_name)

    async def receive_json(self, content, **kwargs):
        # Clients only listen; a ping keeps proxies from closing idle connections.
        if isinstance(content, dict) and content.get("type") == "ping":
            await self.send_json({"type": "pong"})

    async def riff_event(self, message):
        await self.send_json(message["event"])

"""The one websocket, `/ws/`: server-to-client events for the signed-in user.

Authentication: `Authorization: Bearer <token>` on the upgrade request (mobile), or
`?ticket=` from `POST /realtime/ticket` (browsers), consumed on first use. A ticket records the
token it was minted with, so either way a socket knows which token opened it.

Close codes: 4401 when the upgrade carries no live credential (a ticket whose token has been
revoked included); 4001 when the token that opened the socket is revoked later (logout of that
token, logout-all, staff revocation, deactivation, account deletion); 1013 ("try again later")
when Redis, which holds tickets and the channel layer, can't be reached.
"""

from __future__ import annotations

import time
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.contrib.auth.models import AnonymousUser
from django.core.cache import cache

from config.core.errors import BACKEND_DOWN_ERRORS
from config.core.redis import degraded

from .models import User
from .realtime import TICKET_PREFIX, user_group
from .tokens import token_is_live, token_lookup

CLOSE_UNAUTHENTICATED = 4401
CLOSE_REVOKED = 4001
# Redis (tickets, the channel layer) can't be reached: the standard "try again later".
CLOSE_TRY_LATER = 1013
# Besides the push on revocation, a ping re-reads the token at most this often, which also
# ends sockets whose token expired or whose revocation push was lost (Redis hiccup).
RECHECK_SECONDS = 60


@database_sync_to_async
def _from_token(raw: str) -> tuple[User | None, int | None]:
    token = token_lookup(raw)
    return (token.user, token.pk) if token else (None, None)


@database_sync_to_async
def _from_ticket(ticket: str) -> tuple[User | None, int | None]:
    key = TICKET_PREFIX + ticket
    value = cache.get(key)
    if not value or not cache.delete(key):  # delete() is the one-time consume
        return None, None
    user_id, _, token_id = str(value).partition(":")
    if not token_id.isdigit() or not token_is_live(token_id=int(token_id), user_id=user_id):
        # Minted with a token revoked (or expired) since: the ticket dies with it.
        return None, None
    user = User.objects.filter(pk=user_id, is_active=True).first()
    return (user, int(token_id)) if user else (None, None)


@database_sync_to_async
def _still_live(token_id: int, user_id) -> bool:
    return token_is_live(token_id=token_id, user_id=user_id)


class TokenAuthMiddleware:
    """Puts the user (or AnonymousUser) in `scope["user"]`, the token's id in
    `scope["auth_token_id"]`."""

    def __init__(self, inner):
        self.inner = inner

    async def __call__(self, scope, receive, send):
        user, token_id = None, None
        headers = dict(scope.get("headers") or [])
        auth = headers.get(b"authorization", b"").decode("latin-1").split()
        if len(auth) == 2 and auth[0].lower() == "bearer":
            user, token_id = await _from_token(auth[1])
        else:
            ticket = parse_qs(scope.get("query_string", b"").decode()).get("ticket", [""])[0]
            if ticket:
                try:
                    user, token_id = await _from_ticket(ticket[:100])
                except BACKEND_DOWN_ERRORS:
                    degraded("realtime_ticket")
                    scope = dict(scope, backend_down=True)
        scope = dict(scope, user=user or AnonymousUser(), auth_token_id=token_id)
        return await self.inner(scope, receive, send)


class RealtimeConsumer(AsyncJsonWebsocketConsumer):
    group: str | None = None
    token_id: int | None = None
    closed = False

    async def connect(self):
        user = self.scope.get("user")
        token_id = self.scope.get("auth_token_id")
        if self.scope.get("backend_down"):
            await self.close(code=CLOSE_TRY_LATER)
            return
        if user is None or not user.is_authenticated or token_id is None:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        self.token_id = token_id
        try:
            await self.channel_layer.group_add(user_group(user.pk), self.channel_name)
        except BACKEND_DOWN_ERRORS:
            degraded("websocket")
            await self.close(code=CLOSE_TRY_LATER)
            return
        self.group = user_group(user.pk)
        # A revocation that committed between the token check and joining the group sent its
        # `auth.revoked` before we could hear it; reading the token again closes that gap.
        if not await _still_live(token_id, user.pk):
            await self._leave(CLOSE_UNAUTHENTICATED)
            return
        self.checked_at = time.monotonic()
        await self.accept()
        await self.send_json({"type": "hello", "user_id": str(user.pk)})

    async def disconnect(self, code):
        if self.group:
            await self.channel_layer.group_discard(self.group, self.channel_name)
            self.group = None

    async def receive_json(self, content, **kwargs):
        # Clients only listen; a ping keeps proxies from closing idle connections.
        if not isinstance(content, dict) or content.get("type") != "ping" or self.closed:
            return
        if time.monotonic() - self.checked_at >= RECHECK_SECONDS:
            if not await _still_live(self.token_id, self.scope["user"].pk):
                await self._leave(CLOSE_REVOKED)
                return
            self.checked_at = time.monotonic()
        await self.send_json({"type": "pong"})

    async def riff_event(self, message):
        if not self.closed:
            await self.send_json(message["event"])

    async def auth_revoked(self, message):
        token_ids = message.get("token_ids")
        if token_ids is None or self.token_id in token_ids:
            await self._leave(CLOSE_REVOKED)

    async def _leave(self, code: int) -> None:
        """Stops listening at once (no event after this) and closes with `code`."""
        if self.closed:
            return
        self.closed = True
        if self.group:
            await self.channel_layer.group_discard(self.group, self.channel_name)
            self.group = None
        await self.close(code=code)

"""Pushing events to a user's websocket connections.

Every connection of a user joins the channel-layer group `user.<id>`; any app sends with
`send_to_user`, which waits for the surrounding transaction to commit so clients never hear
about rows they cannot read yet.

`close_sockets` is the other message on that group: `auth.revoked` with the ids of revoked
tokens (or none, meaning all of them). Each socket remembers the token that opened it and
closes itself (code 4001) when its token is named. It goes through Redis, so it reaches sockets
held by any web process.

`realtime_ticket_issue` mints the one-time tickets browsers open the socket with (they can't set
headers on a websocket); accounts.consumers redeems them.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import uuid
from dataclasses import dataclass
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.core.cache import cache
from django.db import transaction

from config.core.redis import TIMEOUT_SECONDS, degraded

from .models import AuthToken

logger = logging.getLogger(__name__)

TICKET_PREFIX = "rt-ticket:"


def user_group(user_id: uuid.UUID | str) -> str:
    return f"user.{user_id}"


async def _bounded_group_send(layer, group: str, message: dict[str, Any]) -> None:
    # channels_redis waits on a frozen Redis longer than a request should (5 s and more).
    await asyncio.wait_for(layer.group_send(group, message), timeout=TIMEOUT_SECONDS)


def _group_send(layer, user_id: uuid.UUID | str, message: dict[str, Any]) -> None:
    async_to_sync(_bounded_group_send)(layer, user_group(user_id), message)


def _send_now(user_id: uuid.UUID | str, event: dict[str, Any]) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        _group_send(layer, user_id, {"type": "riff.event", "event": event})
    except Exception:  # a realtime hiccup (Redis down) must never fail the write that caused it
        degraded("realtime_push", user_id)


def send_to_user(user_id: uuid.UUID | str, event: dict[str, Any]) -> None:
    transaction.on_commit(lambda: _send_now(user_id, event))


def _close_now(user_id: uuid.UUID | str, token_ids: list[int] | None) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    message = {"type": "auth.revoked", "token_ids": token_ids}
    try:
        _group_send(layer, user_id, message)
    except Exception:
        # The revocation itself stands (the token no longer authenticates anything); sockets
        # still open re-check their token on the client's next ping (accounts.consumers).
        logger.error("closing the sockets of %s failed", user_id, exc_info=True)


def close_sockets(*, user_id: uuid.UUID | str, token_ids: list[int] | None) -> None:
    """Closes the user's websockets opened with `token_ids` (None: every one), after commit.

    After commit, so that a socket connecting meanwhile, which re-reads its token once it has
    joined the group, either sees the revocation or is in the group when this arrives.
    """
    ids = None if token_ids is None else [int(pk) for pk in token_ids]
    transaction.on_commit(lambda: _close_now(user_id, ids))


def ticket_value(token: AuthToken) -> str:
    """What the ticket key holds: the user and the token the ticket was minted with."""
    return f"{token.user_id}:{token.pk}"


@dataclass(frozen=True)
class RealtimeTicket:
    ticket: str
    expires_in: int  # seconds


def realtime_ticket_issue(*, token: AuthToken) -> RealtimeTicket:
    """A one-time websocket ticket for the holder of `token`, valid RIFF_REALTIME_TICKET_TTL
    seconds. It records the token it was minted with, so revoking that token voids it
    (accounts.consumers checks on redemption). Raises the Redis error when the cache is down:
    a ticket that was not stored can't open anything, so the caller must not hand it out."""
    ticket = secrets.token_urlsafe(24)
    ttl = settings.RIFF_REALTIME_TICKET_TTL
    cache.set(TICKET_PREFIX + ticket, ticket_value(token), timeout=ttl)
    return RealtimeTicket(ticket=ticket, expires_in=ttl)

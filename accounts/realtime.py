"""Pushing events to a user's websocket connections.

Every connection of a user joins the channel-layer group `user.<id>`; any app sends with
`send_to_user`, which waits for the surrounding transaction to commit so clients never hear
about rows they cannot read yet.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

logger = logging.getLogger(__name__)


def user_group(user_id: uuid.UUID | str) -> str:
    return f"user.{user_id}"


def _send_now(user_id: uuid.UUID | str, event: dict[str, Any]) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(user_group(user_id), {"type": "riff.event", "event": event})
    except Exception:  # a realtime hiccup must never fail the write that caused it
        logger.warning("realtime push to %s failed", user_id, exc_info=True)


def send_to_user(user_id: uuid.UUID | str, event: dict[str, Any]) -> None:
    transaction.on_commit(lambda: _send_now(user_id, event))

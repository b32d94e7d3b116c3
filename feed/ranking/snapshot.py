"""The ranked snapshot of one For You session, kept in Redis.

`riff:fy:snap:<user>:<session>` holds the session's order as JSON `[[post_id, reason], ...]`
for `RIFF_FEED_SNAPSHOT_TTL` seconds (refreshed on every page read). The cursor is
`[session, offset]`, so every page is a slice of one fixed list: posts published between pages
never shift it, and no page repeats or skips an item. Visibility is re-checked when a slice is
served (a post removed or blocked meanwhile is dropped, the offset still advances past it).
"""

from __future__ import annotations

import json
import secrets

from django.conf import settings

from config.core.redis import redis_client


def _key(user_id, session: str) -> str:
    return f"riff:fy:snap:{user_id}:{session}"


def snapshot_save(*, user_id, entries: list[tuple[str, str]]) -> str:
    """Stores a new session's order; returns the session id."""
    session = secrets.token_hex(8)
    redis_client().set(
        _key(user_id, session),
        json.dumps([[str(pid), reason] for pid, reason in entries]),
        ex=settings.RIFF_FEED_SNAPSHOT_TTL,
    )
    return session


def snapshot_read(*, user_id, session: str) -> list[tuple[str, str]] | None:
    """The session's order, or None when it expired (or never was this user's)."""
    if not isinstance(session, str) or not session.isalnum():
        return None
    client = redis_client()
    key = _key(user_id, session)
    pipe = client.pipeline(transaction=False)
    pipe.get(key)
    pipe.expire(key, settings.RIFF_FEED_SNAPSHOT_TTL)
    raw, _ = pipe.execute()
    if raw is None:
        return None
    return [(pid, reason) for pid, reason in json.loads(raw)]

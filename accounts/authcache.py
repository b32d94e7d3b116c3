"""Session tokens cached in each web process, checked against a stamp in Redis on every use.

Every authenticated request used to read its token and user from PostgreSQL: a round trip that
was 40 % of `GET /me`'s server time (docs/bench-feed.md). Here each process keeps the rows it
read, keyed by the token's hash, and trusts them only while the token's *stamp* in Redis is the
one it saw when it read them. The stamp check rides the round trip the user's rate limit makes
anyway (config.core.throttles.user_windows_preload), so a request that hits the cache reads
nothing from PostgreSQL.

The stamp is `riff:authv:<token hash>`: a random value set when missing (`SET NX`, then `GET`),
deleted by whatever changes the token or its user (`auth_changed`). A reader takes the stamp
before it reads PostgreSQL, and a writer deletes it after its transaction commits, so a reader
that could have seen the old rows always holds a stamp that no longer exists:

- a revoked, deleted or expired token, or a deactivated, suspended or edited user, is seen on
  the next request, in any process (tests/accounts/test_auth_cache.py);
- Redis losing the stamp (restart, eviction, flush) only costs a re-read;
- while Redis is unreachable every request reads PostgreSQL, and a process that notices the
  outage drops its cache. A change made then cannot delete the stamp at once; the writing
  process keeps the key and deletes it when Redis answers again (config.core.stamps.drop_later,
  a timer retrying every ~10 s). The one gap left: if that process exits first, a process that
  cached the token before the outage and never noticed it may trust it until the entry's age
  passes RIFF_AUTH_CACHE_SECONDS (docs/operations.md, "When Redis is down").

Changes are found where they are made: `post_save`/`post_delete` of users and tokens, and the
`update()` of their querysets (accounts.models), which is how revocation, moderation and
`bulk_update` write. Raw SQL that changes these tables must call `auth_changed` itself.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import transaction

from config.core.errors import BACKEND_DOWN_ERRORS
from config.core.redis import degraded, redis_client
from config.core.stamps import drop_later

STAMP_PREFIX = "riff:authv:"
# A stamp nobody reads for a day goes; the next reader sets a new one and re-reads the rows.
STAMP_TTL_SECONDS = 86_400
STAMP_COMMANDS = 2  # what stamp_queue adds to a pipeline


@dataclass(frozen=True, slots=True)
class Entry:
    """A token's row and its user's row as PostgreSQL returned them, and the stamp that was in
    Redis before they were read. Rows, not model instances: each request builds its own
    instances, so nothing one request does to `request.user` reaches another."""

    token_row: tuple[Any, ...]
    user_row: tuple[Any, ...]
    user_id: Any
    expires_at: datetime
    stamp: bytes
    cached_at: float  # time.monotonic()


_entries: dict[str, Entry] = {}
_lock = threading.Lock()


def enabled() -> bool:
    return settings.RIFF_AUTH_CACHE_SECONDS > 0


def entry_get(key_hash: str) -> Entry | None:
    """The cached rows of a token, if this process read them less than
    RIFF_AUTH_CACHE_SECONDS ago."""
    entry = _entries.get(key_hash)
    if entry is None or time.monotonic() - entry.cached_at >= settings.RIFF_AUTH_CACHE_SECONDS:
        return None
    return entry


def entry_put(key_hash: str, entry: Entry) -> None:
    with _lock:
        if len(_entries) >= settings.RIFF_AUTH_CACHE_ENTRIES and key_hash not in _entries:
            # Full: start over rather than track recency on every hit. Each live token costs
            # one re-read, once.
            _entries.clear()
        _entries[key_hash] = entry


def entry_drop(key_hash: str) -> None:
    _entries.pop(key_hash, None)


def forget_all() -> None:
    """Drops this process's cache (Redis unreachable; tests)."""
    with _lock:
        _entries.clear()


def stamp_queue(pipe, key_hash: str) -> None:
    """Adds the stamp read of a token to `pipe`: its reply at the second of the
    `STAMP_COMMANDS` positions is the stamp, created here if it was missing."""
    key = STAMP_PREFIX + key_hash
    pipe.set(key, secrets.token_hex(8), nx=True, ex=STAMP_TTL_SECONDS)
    pipe.get(key)


def stamp_read(replies: list) -> bytes:
    return replies[STAMP_COMMANDS - 1]


def auth_changed(
    *,
    key_hashes: Iterable[str] = (),
    hashes_of_users: Callable[[], list[str]] | None = None,
) -> None:
    """Tells every process's cache that these tokens (or all tokens of some users, listed by
    `hashes_of_users`) changed: their stamps go now and again once the surrounding transaction
    commits. The first serves reads inside this transaction (tests run in one that never
    commits); the second is what makes the change safe for everyone else, since a reader may
    have taken a fresh stamp and read the old rows between the first and the commit."""
    key_hashes = list(key_hashes)
    if not key_hashes and hashes_of_users is None:
        return

    def bump() -> None:
        hashes = key_hashes + (hashes_of_users() if hashes_of_users is not None else [])
        for key_hash in hashes:
            entry_drop(key_hash)
        if not hashes:
            return
        keys = [STAMP_PREFIX + h for h in hashes]
        try:
            redis_client().delete(*keys)
        except BACKEND_DOWN_ERRORS:
            degraded("auth_cache", "stamp delete")
            forget_all()
            drop_later(keys)  # retried once Redis answers: other processes hold these

    bump()
    if transaction.get_connection().in_atomic_block:
        transaction.on_commit(bump)


def on_user_saved(sender, instance, created: bool, **kwargs) -> None:
    if created:
        return
    from .models import live_token_hashes

    user_ids = [instance.pk]
    auth_changed(hashes_of_users=lambda: live_token_hashes(user_ids=user_ids))


def on_token_changed(sender, instance, created: bool = False, **kwargs) -> None:
    """post_save and post_delete of a token. A user's deletion reaches here through the
    cascade that deletes their tokens."""
    if not created:
        auth_changed(key_hashes=[instance.key_hash])

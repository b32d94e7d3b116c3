"""Stamps: how a web process knows that what it cached from PostgreSQL is still what is there.

The pattern of the token cache (accounts.authcache), for any data: a *stamp* is a Redis string
`riff:stamp:<kind>:<id>` holding a random value, set when missing (`SET NX`) and deleted by
whatever changes the data it stands for (`stamps_drop`). A reader takes the stamps *before* it
reads PostgreSQL and keeps them with what it read; a cached value is good while its stamps are
the ones Redis holds now. A writer deletes them twice: at once (readers inside its own
transaction) and once its transaction commits (a reader that took a fresh stamp and read the old
rows between the two then holds a stamp that no longer exists). So:

- a change is seen by the next read in any process, however many processes cached it;
- Redis losing stamps (restart, eviction, flush) only costs a re-read;
- while Redis is unreachable readers read PostgreSQL (`stamps_read` answers None), and a change
  made then cannot delete its stamps: the process keeps them and deletes them once Redis
  answers (`drop_later`); entries are never trusted past their `max_age` in any case
  (docs/operations.md, "When Redis is down").

Kinds are owned by the layer that owns the data (accounts: `user`, `graph`; feed: `post`,
`likes`, `latest`); readers in upper layers combine them. Raw SQL that changes stamped data
must drop the stamps itself.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from django.db import transaction

from .errors import BACKEND_DOWN_ERRORS
from .redis import (
    STAMPS_LUA,
    Batch,
    degraded,
    recently_degraded,
    redis_client,
    script_run,
    script_sha,
)

PREFIX = "riff:stamp:"
# A stamp nobody reads for a day goes; the next reader sets a new one and reads again.
TTL_SECONDS = 86_400

# Each key of ARGV[3] (space-separated): read, and set to ARGV[1]..i when missing
# (config.core.redis.STAMPS_LUA). ARGV[1] is random per call, so a stamp set after a delete
# never equals one set before it. The keys go as
# one argument, not as KEYS: redis-py encodes each argument in Python, which for a page's forty
# stamps cost more than the script (one Redis instance, not a cluster, as feed.ranking's
# scripts assume).
_READ = STAMPS_LUA + "return stamps(ARGV[3], ARGV[1], ARGV[2])"
_READ_SHA = script_sha(_READ)


def stamp_key(kind: str, ident: object) -> str:
    return f"{PREFIX}{kind}:{ident}"


def _joined(keys: list[str]) -> str:
    """The keys as the scripts take them: separated by spaces, so none may hold white space."""
    joined = " ".join(keys)
    if len(joined.split()) != len(keys):
        raise ValueError("a stamp key holds no white space")
    return joined


def stamps_read(keys: list[str]) -> list[bytes] | None:
    """The current stamp of each key (created when missing), in one round trip; None when
    Redis can't be reached (the caller reads PostgreSQL)."""
    if not keys:
        return []
    if recently_degraded():  # don't wait out another timeout: the database answers
        return None
    flush_pending()  # a change skipped in a blip must not read as unchanged here
    if recently_degraded():
        return None
    try:
        args = [secrets.token_hex(6) + ":", TTL_SECONDS, _joined(keys)]
        return script_run(redis_client(), _READ, _READ_SHA, [], args)
    except BACKEND_DOWN_ERRORS:
        degraded("stamps", "read")
        return None


def stamps_args() -> tuple[str, int]:
    """The value prefix and expiry of one stamps read made inside a round trip of the caller's
    (`stamps_queue`, or a script of its own that calls STAMPS_LUA's `stamps`)."""
    if _pending and not recently_degraded():
        # Ahead of the read: a round trip more, only after a blip. Not within the seconds after
        # a failure (each request would wait out a timeout here and then again in the batch);
        # stamps read then may trust this process's entries for a change it made in the blip,
        # until the retry timer or this flush deletes them.
        flush_pending()
    return secrets.token_hex(6) + ":", TTL_SECONDS


def stamps_queue(batch: Batch, keys: list[str]) -> Callable[[list], dict[str, bytes]]:
    """Queues the read of these stamps on a `Batch` another round trip makes anyway (token
    authentication's); returns what turns that batch's replies into {key: stamp}."""
    position = len(batch)
    batch.stamps(*stamps_args(), _joined(keys))
    return lambda replies: dict(zip(keys, replies[position], strict=True))


def stamps_drop(keys: Iterable[str]) -> None:
    """Deletes these stamps now and again when the surrounding transaction commits.

    For 10 s after this process found Redis unreachable, a delete is not tried in the request:
    each would wait out another timeout. Its keys are kept instead (`_pending`) and deleted
    before this process next reads stamps, and by a timer once those seconds pass, so a change
    made in a blip still reaches every process's caches seconds later, not after their
    `max_age`. Only a change made while Redis stays down longer than a process keeps retrying
    (or a process that exits first) is left to `max_age`."""
    keys = list(dict.fromkeys(keys))
    if not keys:
        return

    def drop() -> None:
        if recently_degraded():
            drop_later(keys)
            return
        kept = _take_pending()  # deletes an earlier blip left: along with these
        try:
            redis_client().delete(*keys, *kept)
        except BACKEND_DOWN_ERRORS:
            degraded("stamps", "delete")
            drop_later(kept + keys)

    drop()
    if transaction.get_connection().in_atomic_block:
        transaction.on_commit(drop)


# Deletes skipped while Redis was failing, for the next round trip that works. Bounded: past
# PENDING_LIMIT keys the oldest are forgotten (their entries still end at `max_age`).
PENDING_LIMIT = 100_000
# How long the retry timer waits after the last failure (recently_degraded's window, and a bit).
RETRY_SECONDS = 10.5
_pending: dict[str, None] = {}
_pending_lock = threading.Lock()
_retry_timer: threading.Timer | None = None


def drop_later(keys: list[str]) -> None:
    """Keeps keys whose delete failed (or was skipped) for the next stamp read in this process
    and for the retry timer. For any stamp-like key (accounts.authcache's too)."""
    global _retry_timer
    with _pending_lock:
        _pending.update(dict.fromkeys(keys))
        while len(_pending) > PENDING_LIMIT:
            del _pending[next(iter(_pending))]
        if _retry_timer is None:
            _retry_timer = threading.Timer(RETRY_SECONDS, _retry)
            _retry_timer.daemon = True
            _retry_timer.start()


def _take_pending() -> list[str]:
    if not _pending:
        return []
    with _pending_lock:
        keys = list(_pending)
        _pending.clear()
    return keys


def _retry() -> None:
    global _retry_timer
    with _pending_lock:
        _retry_timer = None
    if recently_degraded():  # failed again meanwhile: wait out a new window
        keys = _take_pending()
        if keys:
            drop_later(keys)
        return
    flush_pending()


def forget_pending() -> None:
    """Drops the kept deletes and their timer (tests, between cases)."""
    global _retry_timer
    with _pending_lock:
        _pending.clear()
        if _retry_timer is not None:
            _retry_timer.cancel()
            _retry_timer = None


def flush_pending() -> None:
    """Deletes the stamps a failing Redis kept `stamps_drop` from deleting (no-op when none);
    keeps them for later if it fails again."""
    keys = _take_pending()
    if not keys:
        return
    try:
        redis_client().delete(*keys)
    except BACKEND_DOWN_ERRORS:
        degraded("stamps", "delete")
        drop_later(keys)


class StampedCache:
    """A per-process map of values read from PostgreSQL, each kept with the stamps taken before
    the read. `get` answers a value only while its stamps are the ones given (read just now)
    and it is younger than `max_age` seconds. Bounded: when full it starts over rather than
    track recency on every hit."""

    def __init__(self, *, max_entries: int, max_age: float):
        self.max_entries = max_entries
        self.max_age = max_age
        self._entries: dict[Any, tuple[tuple, float, Any]] = {}
        self._lock = threading.Lock()

    def peek(self, key) -> Any | None:
        """The value, whatever its stamps (to learn what to ask stamps for), if not too old."""
        entry = self._entries.get(key)
        if entry is None or time.monotonic() - entry[1] >= self.max_age:
            return None
        return entry[2]

    def get(self, key, stamps: tuple) -> Any | None:
        entry = self._entries.get(key)
        if entry is None or entry[0] != stamps or time.monotonic() - entry[1] >= self.max_age:
            return None
        return entry[2]

    def put(self, key, stamps: tuple, value) -> None:
        with self._lock:
            if len(self._entries) >= self.max_entries and key not in self._entries:
                self._entries.clear()
            self._entries[key] = (stamps, time.monotonic(), value)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)

"""The ranked order of For You sessions, kept in Redis ahead of the request.

A viewer's *order* is a ranked list of `post_id|reason|author_id|liked` entries in the Redis
list `riff:fy:snap:<user>:<session>`; a page reads only its slice (LRANGE), never the whole
list.
`riff:fy:cur:<user>` (a hash) names the viewer's current order: `session`, `size`, `built` (when
it was ranked) and `pos` (how far the viewer's sessions have read into it).

The cursor is `[session, offset]`, so every page is a slice of one fixed list: posts published
between pages never shift it, and no page repeats or skips an item. Visibility is re-checked as
a slice is served (feed.postcache under the stamps read with the slice, else feed.hydrate: a
post removed or an author blocked meanwhile is dropped and the offset still advances past it).

Ranking is the expensive part of For You, so it is not done per scroll session (see
`feed.ranking.session_start`): a new session continues down the current order from `pos`
(what the viewer saw sinks, as before), and the order is re-ranked on a worker
(`feed.tasks.feed_order_refresh`) once it is `RIFF_FEED_ORDER_REFRESH_SECONDS` old, or in the
request when none is usable (first visit, `RIFF_FEED_ORDER_MAX_AGE_SECONDS` old, read to its
end, or dropped because the viewer changed their preferences or said "see less").
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass

import redis
from django.conf import settings

from config.core.redis import Batch, command_run, degraded, redis_client
from config.core.stamps import stamps_read

from .. import postcache


def _key(user_id, session: str) -> str:
    return f"riff:fy:snap:{user_id}:{session}"


def _cur_key(user_id) -> str:
    return f"riff:fy:cur:{user_id}"


def _ttl() -> int:
    # An order must outlive the time it may be served from, not just one session.
    return max(settings.RIFF_FEED_SNAPSHOT_TTL, settings.RIFF_FEED_ORDER_MAX_AGE_SECONDS + 600)


@dataclass(frozen=True)
class Current:
    session: str
    size: int
    built: float
    pos: int

    @property
    def age(self) -> float:
        return time.time() - self.built


def _facts_key(user_id, session: str) -> str:
    return f"riff:fy:facts:{user_id}:{session}"


def snapshot_save(*, user_id, entries: list[tuple[str, ...]], facts: str = "") -> str:
    """Stores a new order and makes it the viewer's current one; returns its session id.
    Entries are `(post_id, reason, author_id, liked)` (`liked`: "1" when the viewer liked the
    post when it was ranked, else ""; shorter entries are taken too): the author lets a
    slice's read take its authors' stamps too (`_SLICE_STAMPS`), and `liked` answers the page
    while `facts`, the viewer's graph and likes stamps taken before the order was ranked
    (`order_facts_now`), are still the current ones."""
    session = secrets.token_hex(8)
    key, ttl = _key(user_id, session), _ttl()
    pipe = redis_client().pipeline(transaction=True)
    if entries:
        pipe.rpush(key, *("|".join(entry) for entry in entries))
        pipe.expire(key, ttl)
    if facts:
        pipe.set(_facts_key(user_id, session), facts, ex=ttl)
    pipe.delete(_cur_key(user_id))
    pipe.hset(
        _cur_key(user_id),
        mapping={"session": session, "size": len(entries), "built": time.time(), "pos": 0},
    )
    pipe.expire(_cur_key(user_id), ttl)
    pipe.execute()
    return session


def current(*, user_id) -> Current | None:
    """The viewer's current order, or None."""
    return current_parse(redis_client().hgetall(_cur_key(user_id)))


def order_facts_now(user_id) -> str:
    """The viewer's graph and likes stamps now (feed.postcache.viewer_keys), taken before an
    order is ranked: while both stay the same, no block either way has been made since and
    the viewer liked or unliked nothing, so what the ranking read holds (its candidates skip
    blocked authors; each entry says whether the viewer liked the post). "" when Redis can't
    be reached or the caches are off: the order's facts are then never used."""
    if not postcache.enabled():
        return ""
    got = stamps_read(postcache.viewer_keys(user_id))
    return b" ".join(got).decode() if got else ""


# The stamps a page of a slice checks (feed.postcache), read in the script that reads the
# slice, so the page makes no round trip of its own for them (ARGV[a..a + 4]:
# postcache.PAGE_STAMPS_LUA): each entry's post and, when the entry names it, its author.
# `_slice_parse` walks the entries the same way in Python.
_SLICE_STAMPS = (
    postcache.PAGE_STAMPS_LUA
    + """
local function slice_stamps(slice, a)
  if not slice then return false end
  local ids, authors = {}, {}
  for i = 1, #slice do
    local pid, author = string.match(slice[i], '^([^|]*)|?[^|]*|?([^|]*)')
    ids[i] = pid
    authors[i] = author ~= '' and author
  end
  return page_stamps(ids, authors, a)
end
"""
)


@dataclass(frozen=True)
class Slice:
    """A slice of an order as a page reads it."""

    entries: list[tuple[str, str]]  # (post_id, reason)
    # {stamp key: stamp} read with it (feed.postcache): the viewer's, each post's and each
    # named author's; None when none were read.
    stamps: dict | None = None
    # {post_id: liked} from the entries, while the order's facts hold (`order_facts_now`):
    # no block either way since it was ranked, and the viewer's likes as they were. None:
    # they don't hold (or the order has none), and the page reads the viewer's facts.
    known: dict | None = None


def _slice_parse(user_id, raw, stamps=None, facts=None) -> Slice:
    """A slice's reply, with its stamps and its order's facts (`_SLICE`, `_OPEN`)."""
    if not isinstance(raw, list):
        return Slice(entries=[])
    entries, pairs, liked = [], [], {}
    for item in raw:
        parts = item.decode().split("|")
        entries.append(tuple(parts[:2]))
        pairs.append((parts[0], parts[2] if len(parts) >= 3 else None))
        if len(parts) >= 4:
            liked[parts[0]] = parts[3] == "1"
    keys = postcache.script_stamp_keys(user_id, pairs)
    if not isinstance(stamps, list) or len(stamps) != len(keys):
        return Slice(entries=entries)
    got = dict(zip(keys, stamps, strict=True))
    viewer = b" ".join(got[key] for key in postcache.viewer_keys(user_id))
    holds = isinstance(facts, bytes) and len(liked) == len(entries) and facts == viewer
    return Slice(entries=entries, stamps=got, known=liked if holds else None)


# A first page's opening read: the viewer's current order and, when there is one, the slice a
# new session would start with (from `pos`) with its stamps and its order's facts, so a
# session that continues the order reads its first slice in the round trip that opens the
# page. The order's keys are built in the script from the session it names (ARGV[1] and
# ARGV[9] are their prefixes): one Redis instance, not a cluster.
_OPEN = (
    _SLICE_STAMPS
    + """
local cur = redis.call('HGETALL', KEYS[1])
local session, pos
for i = 1, #cur, 2 do
  if cur[i] == 'session' then session = cur[i + 1] end
  if cur[i] == 'pos' then pos = tonumber(cur[i + 1]) end
end
if not session or not pos or not string.match(session, '^%w+$') then return {cur, false} end
local key = ARGV[1] .. session
local slice = redis.call('LRANGE', key, pos, pos + tonumber(ARGV[2]) - 1)
redis.call('EXPIRE', key, ARGV[3])
local stamped = slice_stamps(slice, 4)
if not stamped then return {cur, slice} end
return {cur, slice, stamped, redis.call('GET', ARGV[9] .. session)}
"""
)


def current_open_read(batch: Batch, *, user_id, count: int, stamped: bool = False) -> int:
    """Queues the read of the viewer's current order and of its next `count` entries from
    where the viewer's sessions stand (`stamped`: and their stamps and the order's facts);
    `current_open_parse` reads the reply (at the index this returns, `Replies.reply`)."""
    return batch.command(
        "EVAL",
        _OPEN,
        1,
        _cur_key(user_id),
        _key(user_id, ""),
        count,
        _ttl(),
        *postcache.script_stamp_args(user_id, stamped),
        _facts_key(user_id, ""),
    )


def current_open_parse(reply, *, user_id=None) -> tuple[Current | None, Slice | None]:
    """`(current order, its slice from pos)`; the slice is None without an order."""
    ok = isinstance(reply, list | tuple) and len(reply) in (2, 4)
    raw, entries = (reply[0], reply[1]) if ok else ([], None)
    cur = current_parse(dict(zip(raw[::2], raw[1::2], strict=False)) if raw else {})
    if cur is None or entries is None:
        return cur, None
    return cur, _slice_parse(user_id, entries, *reply[2:4])


def current_parse(raw: dict) -> Current | None:
    try:
        return Current(
            session=raw[b"session"].decode(),
            size=int(raw[b"size"]),
            built=float(raw[b"built"]),
            pos=int(raw[b"pos"]),
        )
    except (KeyError, ValueError):
        return None


def drop_quietly(*, user_id) -> None:
    """Forgets the current order: the next session ranks afresh (in the request). Without
    Redis there is no order to forget."""
    try:
        redis_client().delete(_cur_key(user_id))
    except redis.RedisError:
        degraded("feed_order_drop", user_id)


_ADVANCE = """
if redis.call('HGET', KEYS[1], 'session') == ARGV[1] then
  local pos = tonumber(redis.call('HGET', KEYS[1], 'pos') or '0')
  if tonumber(ARGV[2]) > pos then redis.call('HSET', KEYS[1], 'pos', ARGV[2]) end
end
return 1
"""


def snapshot_slice(*, user_id, session: str, start: int, stop: int) -> list[tuple[str, str]]:
    """Entries `start`..`stop-1` of a session's order (empty once it expired); reading keeps
    the order alive."""
    batch = Batch(redis_client())
    at = snapshot_slice_read(batch, user_id=user_id, session=session, start=start, stop=stop)
    return snapshot_slice_parse(batch.execute().reply(at) if at is not None else None)


_SLICE = (
    _SLICE_STAMPS
    + """
local slice = redis.call('LRANGE', KEYS[1], ARGV[1], ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[3])
local stamped = slice_stamps(slice, 4)
if not stamped then return {slice} end
return {slice, stamped, redis.call('GET', ARGV[9])}
"""
)


def snapshot_slice_read(
    batch: Batch, *, user_id, session: str, start: int, stop: int, stamped: bool = False
):
    """Queues `snapshot_slice` on `batch`: the index of the reply `snapshot_slice_parse` reads,
    None for a session id that is not one of ours (nothing is asked). `stamped`: the slice's
    stamps and its order's facts come with it (one script; `snapshot_slice_stamped_parse`
    reads that reply)."""
    if not isinstance(session, str) or not session.isalnum():
        return None
    key = _key(user_id, session)
    if stamped:
        args = (start, stop - 1, _ttl(), *postcache.script_stamp_args(user_id))
        return batch.command("EVAL", _SLICE, 1, key, *args, _facts_key(user_id, session))
    at = batch.command("LRANGE", key, start, stop - 1)
    batch.command("EXPIRE", key, _ttl())
    return at


def snapshot_slice_stamped_parse(raw, *, user_id) -> Slice:
    """The entries, stamps and facts of a `stamped` slice read."""
    if not isinstance(raw, list | tuple) or len(raw) not in (1, 3):
        return Slice(entries=[])
    return _slice_parse(user_id, *raw)


def snapshot_slice_parse(raw) -> list[tuple[str, str]]:
    """`(post_id, reason)` of each entry (an entry's author is for its stamps only)."""
    if not isinstance(raw, list):
        return []
    return [tuple(item.decode().split("|", 2)[:2]) for item in raw]


def snapshot_size_read(batch: Batch, *, user_id, session: str):
    """Queues the read of how many entries a session's order has: the index of its reply, or
    None for a session id that is not one of ours (its size is 0, as for an expired one). An
    empty order is never continued: its first page has no `next`."""
    if isinstance(session, str) and session.isalnum():
        return batch.command("LLEN", _key(user_id, session))
    return None


def snapshot_read(*, user_id, session: str) -> list[tuple[str, str]]:
    """A session's whole order (tests and tools; pages read slices)."""
    return snapshot_slice(user_id=user_id, session=session, start=0, stop=0)


def advance(*, user_id, session: str, offset: int, batch: Batch | None = None) -> None:
    """Records that the viewer read `session` up to `offset` (only moves forward, and only
    while `session` is still the current order). With `batch`, queued there instead of sent."""
    args = ("EVAL", _ADVANCE, 1, _cur_key(user_id), session, offset)
    if batch is None:
        command_run(redis_client(), *args)
    else:
        batch.command(*args)

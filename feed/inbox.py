"""Following inboxes: per-user sorted sets in Redis, filled on write, rebuilt lazily.

`riff:inbox:<user>` holds the newest `INBOX_SIZE` posts of the people the user follows, as
`post_id|author_id` members (`member`) scored by publish time: the author lets a page's read
take the stamps of the post's author in the same round trip (`read_queue`). Members written
before the author was (a bare `post_id`) are still read; their authors' stamps are read by the
page. A user is *active* while their inbox exists (it expires after `INBOX_TTL` without a
read), so publishing fans out only to followers who read their Following feed recently;
everyone else is served from the database and gets an inbox built on their next read. The
inbox is only an index: every page is re-checked (visibility, blocks, whether the viewer still
follows the author: feed.postcache under stamps, or the database), so a stale entry can never
leak a post.
"""

from __future__ import annotations

import redis

from config.core.redis import Batch, degraded, redis_client

from . import postcache
from .models import Post, PostState

INBOX_SIZE = 1000
INBOX_TTL = 7 * 24 * 3600
FANOUT_CHUNK = 1000


def inbox_key(user_id) -> str:
    return f"riff:inbox:{user_id}"


def score(post: Post) -> float:
    return post.created_at.timestamp()


def member(post_id, author_id) -> str:
    """A post's inbox member. Post ids are UUIDs of one length, so members of one score sort
    as their post ids do (the cursor's tie-break, `_READ`)."""
    return f"{post_id}|{author_id}"


def fanout(*, post_id, author_id, created_at, follower_ids: list) -> int:
    """Adds the post to the inboxes of the followers whose inbox is alive; returns how many."""
    client = redis_client()
    entry, value = member(post_id, author_id), created_at.timestamp()
    added = 0
    try:
        for i in range(0, len(follower_ids), FANOUT_CHUNK):
            chunk = follower_ids[i : i + FANOUT_CHUNK]
            pipe = client.pipeline(transaction=False)
            for uid in chunk:
                pipe.exists(inbox_key(uid))
            alive = [uid for uid, ok in zip(chunk, pipe.execute(), strict=True) if ok]
            pipe = client.pipeline(transaction=False)
            for uid in alive:
                key = inbox_key(uid)
                pipe.zadd(key, {entry: value})
                pipe.zremrangebyrank(key, 0, -INBOX_SIZE - 1)
            pipe.execute()
            added += len(alive)
    except redis.RedisError:
        # The database path serves everyone correctly; inboxes are rebuilt on the next read.
        degraded("feed_inbox", f"(fan-out of {post_id})")
    return added


def rebuild(*, user) -> bool:
    """Fills `user`'s inbox from the database; False when Redis is unavailable."""
    rows = list(
        Post.objects.filter(state=PostState.LIVE, author__follower_set__follower=user)
        .order_by("-created_at", "-id")
        .values_list("id", "created_at", "author_id")[:INBOX_SIZE]
    )
    key = inbox_key(user.pk)
    try:
        pipe = redis_client().pipeline(transaction=True)
        pipe.delete(key)
        # A sentinel keeps an empty inbox alive (someone who follows nobody yet).
        pipe.zadd(key, {"~": 0.0, **{member(pk, a): at.timestamp() for pk, at, a in rows}})
        pipe.expire(key, INBOX_TTL)
        pipe.execute()
    except redis.RedisError:
        degraded("feed_inbox", f"(rebuild for {user.pk})")
        return False
    return True


def drop(*, user_id) -> None:
    try:
        redis_client().delete(inbox_key(user_id))
    except redis.RedisError:
        # Nobody reads a deleted account's inbox; it expires on its own (INBOX_TTL).
        degraded("feed_inbox", f"(drop for {user_id})")


# EXPIRE answers whether the inbox exists and keeps it alive; then up to ARGV[3] entries from
# ARGV[2] down, less those a cursor already passed (its score ARGV[9], "" for none, and post id
# ARGV[10]: entries of that score whose id is not below it) and at most ARGV[11] of them; the
# inbox's size; and, for a page that uses the caches, the stamps it will check
# (feed.postcache.page_stamps, ARGV[4..8]): the viewer's, each post's and each named author's,
# for the entries returned only.
_READ = (
    postcache.PAGE_STAMPS_LUA
    + """
local alive = redis.call('EXPIRE', KEYS[1], ARGV[1])
local found = redis.call('ZREVRANGEBYSCORE', KEYS[1], ARGV[2], '(0', 'WITHSCORES', 'LIMIT', 0,
  ARGV[3])
local size = redis.call('ZCARD', KEYS[1])
if alive == 0 then return {alive, found, size} end
local rows, ids, authors = {}, {}, {}
local at, after, want = tonumber(ARGV[9]), ARGV[10], tonumber(ARGV[11])
for i = 1, #found, 2 do
  if #ids >= want then break end
  local pid, author = string.match(found[i], '^([^|]*)|?([^|]*)')
  if not (at and tonumber(found[i + 1]) == at and pid >= after) then
    rows[#rows + 1] = found[i]
    rows[#rows + 1] = found[i + 1]
    ids[#ids + 1] = pid
    authors[#authors + 1] = author ~= '' and author
  end
end
return {alive, rows, size, page_stamps(ids, authors, 4)}
"""
)


def read_queue(batch, *, user_id, before: tuple[float, str] | None, count: int) -> int:
    """Queues a read of the inbox on a `config.core.redis.Batch` (one script, `_READ`): up to
    `count` entries after `before` (after a cursor, 50 more are read to skip those of the
    cursor's own score it already passed), with the stamps the page will check. Returns the
    reply's index (`read_parse`)."""
    max_score = "+inf" if before is None else before[0]
    num = count if before is None else count + 50
    after = ("", "") if before is None else (repr(float(before[0])), str(before[1]))
    args = (INBOX_TTL, max_score, num, *postcache.script_stamp_args(user_id), *after, count)
    return batch.command("EVAL", _READ, 1, inbox_key(user_id), *args)


def read_parse(reply, *, user_id):
    """What `read` answers, from the reply of `read_queue`'s script (which skipped what the
    cursor passed and stopped at the count); None when the inbox did not exist (the caller
    rebuilds it)."""
    if not isinstance(reply, list | tuple) or len(reply) not in (3, 4):
        return None
    alive, rows, size = reply[:3]
    if not alive:
        return None
    out, pairs = [], []
    for i in range(0, len(rows), 2):
        parts = rows[i].decode().split("|")
        pairs.append((parts[0], parts[1] if len(parts) > 1 else None))
        out.append((parts[0], float(rows[i + 1])))
    stamps = None
    if len(reply) == 4 and isinstance(reply[3], list):
        keys = postcache.script_stamp_keys(user_id, pairs)
        if len(keys) == len(reply[3]):
            stamps = dict(zip(keys, reply[3], strict=True))
    return out, size - 1 >= INBOX_SIZE, stamps


def read(*, user, before: tuple[float, str] | None, count: int):
    """Up to `count` `(post_id, score)` entries strictly after `before` = (score, post_id) in
    newest-first order, whether the inbox was truncated (older posts may exist only in the
    database), and the stamps of the entries read ({key: stamp}, feed.postcache; None when
    not read). None when the inbox can't be used (Redis down)."""
    try:
        for attempt in range(2):
            batch = Batch(redis_client())
            at = read_queue(batch, user_id=user.pk, before=before, count=count)
            got = read_parse(batch.execute().reply(at), user_id=user.pk)
            if got is not None:
                return got
            if attempt or not rebuild(user=user):
                return None
    except redis.RedisError:
        degraded("feed_inbox", f"(read for {user.pk}; served from the database)")
    return None

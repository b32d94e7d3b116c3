"""Following inboxes: per-user sorted sets in Redis, filled on write, rebuilt lazily.

`riff:inbox:<user>` holds the newest `INBOX_SIZE` post ids of the people the user follows,
scored by publish time. A user is *active* while their inbox exists (it expires after
`INBOX_TTL` without a read), so publishing fans out only to followers who read their Following
feed recently; everyone else is served from the database and gets an inbox built on their next
read. The inbox is only an index: every page is re-checked against the database (visibility,
blocks, whether the viewer still follows the author), so a stale entry can never leak a post.
"""

from __future__ import annotations

import redis

from config.core.redis import degraded, redis_client

from .models import Post, PostState

INBOX_SIZE = 1000
INBOX_TTL = 7 * 24 * 3600
FANOUT_CHUNK = 1000


def inbox_key(user_id) -> str:
    return f"riff:inbox:{user_id}"


def score(post: Post) -> float:
    return post.created_at.timestamp()


def fanout(*, post_id, created_at, follower_ids: list) -> int:
    """Adds the post to the inboxes of the followers whose inbox is alive; returns how many."""
    client = redis_client()
    member, value = str(post_id), created_at.timestamp()
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
                pipe.zadd(key, {member: value})
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
        .values_list("id", "created_at")[:INBOX_SIZE]
    )
    key = inbox_key(user.pk)
    try:
        pipe = redis_client().pipeline(transaction=True)
        pipe.delete(key)
        # A sentinel keeps an empty inbox alive (someone who follows nobody yet).
        pipe.zadd(key, {"~": 0.0, **{str(pk): at.timestamp() for pk, at in rows}})
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


READ_COMMANDS = 3  # what read_queue adds


def read_queue(target, *, user_id, before: tuple[float, str] | None, count: int) -> None:
    """Queues a read of the inbox on a pipeline or a `config.core.redis.Batch`: EXPIRE answers
    whether it exists and keeps it alive, then up to `count` entries (after a cursor, over-read:
    entries with the cursor's own score that it already passed are filtered by `read_parse`)
    and the inbox's size. A first page filters nothing, so it reads exactly `count`."""
    key = inbox_key(user_id)
    max_score = "+inf" if before is None else before[0]
    target.expire(key, INBOX_TTL)
    target.zrevrangebyscore(key, max_score, "(0", num=count if before is None else count + 50)
    target.zcard(key)


def read_parse(replies: list, *, before: tuple[float, str] | None, count: int):
    """What `read` answers, from the replies of `read_queue`'s commands; None when the inbox
    did not exist (the caller rebuilds it)."""
    alive, rows, size = replies
    if not alive:
        return None
    out = []
    for raw, value in rows:
        pid = raw.decode()
        if before is not None and value == before[0] and pid >= before[1]:
            continue
        out.append((pid, value))
    return out[:count], size - 1 >= INBOX_SIZE


class _Pipe:
    """`read_queue`'s commands on a redis-py pipeline."""

    def __init__(self, pipe) -> None:
        self.pipe = pipe

    def expire(self, key, seconds) -> None:
        self.pipe.expire(key, seconds)

    def zrevrangebyscore(self, key, max_score, min_score, *, num: int) -> None:
        self.pipe.zrevrangebyscore(key, max_score, min_score, start=0, num=num, withscores=True)

    def zcard(self, key) -> None:
        self.pipe.zcard(key)


def read(*, user, before: tuple[float, str] | None, count: int):
    """Up to `count` `(post_id, score)` entries strictly after `before` = (score, post_id) in
    newest-first order, and whether the inbox was truncated (older posts may exist only in the
    database). None when the inbox can't be used (Redis down)."""
    try:
        for attempt in range(2):
            pipe = redis_client().pipeline(transaction=False)
            read_queue(_Pipe(pipe), user_id=user.pk, before=before, count=count)
            got = read_parse(pipe.execute(), before=before, count=count)
            if got is not None:
                return got
            if attempt or not rebuild(user=user):
                return None
    except redis.RedisError:
        degraded("feed_inbox", f"(read for {user.pk}; served from the database)")
    return None

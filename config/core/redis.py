"""Redis, and what Riff does while it is down.

One client per process for the structures Django's cache API can't express (sorted sets for
inboxes and feed snapshots, SET NX for dedupe). Redis holds nothing Riff can't lose or rebuild
(rate-limit windows, websocket tickets, feed indexes and snapshots, Celery messages the sweeper
re-sends), so an outage degrades the API and never takes it down (docs/operations.md, "When
Redis is down"):

- what can go on without Redis does, and says so: `degraded(component)` logs the error and
  counts it in `riff_redis_degraded_total{component}` (throttles allow, feeds read the database);
- what can't answers 503 `unavailable` with Retry-After: config.core.errors turns any Redis or
  broker error that reaches a view into that (`BACKEND_DOWN_ERRORS`, `backend_unavailable`);
- nothing waits long: every socket gives up after TIMEOUT_SECONDS (the Django cache's and the
  Celery broker's too, see settings), and `publish` does not let kombu retry on top.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import os
import select
import sys
import threading
import time
from typing import Any

import hiredis
import redis
from django.conf import settings
from django.core.cache.backends.redis import RedisCache
from django.utils.functional import cached_property
from prometheus_client import Counter
from redis._parsers.base import BaseParser

logger = logging.getLogger(__name__)

# Long enough for a loaded server, short enough that a frozen one costs a request seconds.
TIMEOUT_SECONDS = 2
# No retries by kombu on top of redis-py's own (which already reconnects a pooled connection that
# died with a restarted server): each would hold the request another TIMEOUT_SECONDS while the
# broker is really down, and the sweeper re-sends what could not be sent (generation.dispatch).
PUBLISH_RETRY_POLICY = {"max_retries": 0}

DEGRADED = Counter(
    "riff_redis_degraded_total",
    "Operations that went on without Redis or the Celery broker, by component",
    ["component"],
)


@functools.cache
def _client(url: str) -> redis.Redis:
    return redis.Redis.from_url(
        url, socket_timeout=TIMEOUT_SECONDS, socket_connect_timeout=TIMEOUT_SECONDS
    )


def redis_client() -> redis.Redis:
    return _client(settings.REDIS_URL)


# config.core.stamps' read, as Lua functions for scripts: `stamps_of` answers the stamps of the
# keys in the list `keys`, each set to `prefix`..i where missing; `stamps` those of the
# space-separated keys `joined`. One MGET for all (most exist); a SET only for the missing ones
# (a script runs alone, so no NX is needed; a key named twice gets one value). A script that
# builds its keys itself hands `stamps_of` the list: joining and splitting them again cost
# Redis more than the MGET did.
STAMPS_LUA = """
local function stamps_of(keys, prefix, ttl)
  local out, made = {}, {}
  for s = 1, #keys, 500 do
    local part = redis.call('MGET', unpack(keys, s, math.min(s + 499, #keys)))
    for k = 1, #part do out[s + k - 1] = part[k] end
  end
  for j = 1, #keys do
    if not out[j] then
      local value = made[keys[j]]
      if not value then
        value = prefix .. j
        redis.call('SET', keys[j], value, 'EX', ttl)
        made[keys[j]] = value
      end
      out[j] = value
    end
  end
  return out
end
local function stamps(joined, prefix, ttl)
  local keys = {}
  for key in string.gmatch(joined, '%S+') do keys[#keys + 1] = key end
  return stamps_of(keys, prefix, ttl)
end
"""

# Runs a batch's commands in order (`Batch`): KEYS are their keys; ARGV holds, per command, its
# letter and then its arguments (SET: value and expiry; EXPIRE: seconds). `m` reads stamps
# (config.core.stamps): its arguments are the value prefix, the expiry and the keys, joined.
# `z` is ZREVRANGEBYSCORE max min WITHSCORES LIMIT 0 count; `c` is ZCARD.
_BATCH_SCRIPT = (
    STAMPS_LUA
    + """
local out, a = {}, 1
for i = 1, #KEYS do
  local op = ARGV[a]
  if op == 'g' then out[i] = redis.call('GET', KEYS[i]); a = a + 1
  elseif op == 'i' then out[i] = redis.call('INCR', KEYS[i]); a = a + 1
  elseif op == 'e' then out[i] = redis.call('EXPIRE', KEYS[i], ARGV[a + 1]); a = a + 2
  elseif op == 's' then
    out[i] = redis.call('SET', KEYS[i], ARGV[a + 1], 'NX', 'EX', ARGV[a + 2]); a = a + 3
  elseif op == 'm' then out[i] = stamps(ARGV[a + 3], ARGV[a + 1], ARGV[a + 2]); a = a + 4
  elseif op == 'z' then
    out[i] = redis.call('ZREVRANGEBYSCORE', KEYS[i], ARGV[a + 1], ARGV[a + 2], 'WITHSCORES',
      'LIMIT', 0, ARGV[a + 3]); a = a + 4
  elseif op == 'c' then out[i] = redis.call('ZCARD', KEYS[i]); a = a + 1
  else return redis.error_reply('unknown batch op') end
end
return out
"""
)


def script_sha(script: str) -> str:
    return hashlib.sha1(script.encode()).hexdigest()  # noqa: S324 (Redis names scripts so)


class _Link:
    """A connection to one Redis that one thread owns, written and read raw: the socket
    redis-py's `Connection` opened (TLS, AUTH and SELECT done its way), a hiredis reader of our
    own, and a poll that tells whether the server closed it while it sat idle."""

    __slots__ = ("conn", "sock", "reader", "idle")

    def __init__(self, client: redis.Redis) -> None:
        # Made as the pool makes its own, but not counted against the pool's limit: a link is
        # never given back to the pool, so `make_connection` (which counts every connection it
        # makes, connected or not) would refuse all links after `max_connections` (100 by
        # default) had been opened or tried over the process's life, e.g. during an outage.
        pool = client.connection_pool
        conn = pool.connection_class(**pool.connection_kwargs)
        conn.connect()
        self.conn = conn
        self.sock = conn._sock  # ours alone from here: conn's own parser is never used
        # Error replies come back as the exceptions redis-py raises for them (NoScriptError...).
        self.reader = hiredis.Reader(
            protocolError=redis.exceptions.InvalidResponse, replyError=BaseParser.parse_error
        )
        self.idle = select.poll()
        self.idle.register(self.sock, select.POLLIN)

    def stale(self) -> bool:
        """Whether anything is readable before we asked: the server closed the connection (a
        restart, CLIENT KILL, an idle timeout) or left bytes no reply of ours accounts for."""
        return bool(self.idle.poll(0))

    def read(self):
        while True:
            reply = self.reader.gets()
            if reply is not False:
                return reply
            data = self.sock.recv(65536)
            if not data:
                raise redis.exceptions.ConnectionError("Connection closed by server.")
            self.reader.feed(data)

    def close(self) -> None:
        self.conn.disconnect()


# Each thread's links, by client. Threads are few and long-lived (the ASGI handler's request
# threads, uvicorn's event loop, Celery's pool), so each holds one connection per Redis.
_local = threading.local()


def _forget_links() -> None:
    global _local
    _local = threading.local()  # a forked child starts with none of its parent's connections


os.register_at_fork(after_in_child=_forget_links)


def _link(client: redis.Redis) -> _Link:
    links = _local.__dict__.setdefault("links", {})
    link = links.get(client)
    if link is not None and link.stale():
        link.close()
        link = None
    if link is None:
        link = links[client] = _Link(client)
    return link


def _send(link: _Link, packed: list[bytes]) -> None:
    link.sock.sendall(packed[0] if len(packed) == 1 else b"".join(packed))


def commands_run(client: redis.Redis, packed: list[bytes]) -> list:
    """Commands already packed (`hiredis.pack_command`), sent in one packet on this thread's
    own connection to `client`'s server, their replies read raw: for commands whose replies
    need no parsing of redis-py's (a script's array, a list, a count). An error reply is
    returned in its place as the exception object, after every reply was read.

    redis-py's own path (`execute_command`, pipelines) encodes each argument in Python and goes
    through its retry, observability and response-callback layers: for the 23 arguments of an
    authenticated request's one EVALSHA, 104-133 us of client CPU against 78-87 us through its
    pool here, and taking a pooled connection (a lock, a pid check, a readability poll, the
    hand-back) was still 13 us of a round trip's 41: a thread keeps its own connection instead
    (`_Link`; docs/bench-feed.md). A connection the server closed while idle is replaced before
    sending, as the pool did. A connection or timeout error mid-call raises redis-py's
    exception and closes the connection, so the next call opens a new one (redis-py's client
    does the same with no retries configured)."""
    link = _link(client)
    try:
        _send(link, packed)
        return [link.read() for _ in packed]
    except BaseException as error:
        _local.links.pop(client, None)
        link.close()
        if isinstance(error, TimeoutError):
            raise redis.exceptions.TimeoutError(f"Timeout reading from Redis: {error}") from error
        if isinstance(error, OSError):
            raise redis.exceptions.ConnectionError(f"Error talking to Redis: {error}") from error
        raise


def command_run(client: redis.Redis, *args):
    """One command by `commands_run`'s path; an error reply raises."""
    (reply,) = commands_run(client, [hiredis.pack_command(args)])
    if isinstance(reply, redis.exceptions.ResponseError):
        raise reply
    return reply


def script_run(client: redis.Redis, script: str, sha: str, keys: list, args: list):
    """EVALSHA, and EVAL when the server forgot the script (restarted, flushed). One round trip
    in the usual case: redis-py's `Script` object does the same, but in a pipeline it asks
    SCRIPT EXISTS first."""
    try:
        return command_run(client, "EVALSHA", sha, len(keys), *keys, *args)
    except redis.exceptions.NoScriptError:
        return command_run(client, "EVAL", script, len(keys), *keys, *args)


_BATCH_SHA = script_sha(_BATCH_SCRIPT)


class Batch:
    """Commands queued the way a pipeline queues them (the kinds every authenticated request
    sends: GET, SET NX EX, INCR, EXPIRE; sorted-set reads; config.core.stamps' read), sent in
    one packet packed by hiredis and read raw. A batch with a stamps read goes as one EVALSHA
    of a script that runs them all in order (the stamps read is Lua); any other goes as the
    commands themselves (`_execute_plain`), which costs Redis and the client less.

    redis-py's pipeline packs, sends and parses each command on its own in Python; this took
    about a third off the client's cost of a request's token stamp and rate-limit window
    (docs/bench-feed.md). `execute` answers what a
    pipeline would (SET: True or None; EXPIRE: a bool). Any other command (a feed's script, a
    list read) rides the same packet through `command`, after the script, its reply raw; the
    whole packet is packed by hiredis in C and read without redis-py's layers
    (`commands_run`). Should the server have forgotten the batch's script, the script runs
    again, with its text, after those commands: keep them independent of the script's."""

    __slots__ = ("client", "keys", "args", "ops", "plain", "extras")

    def __init__(self, client: redis.Redis):
        self.client = client
        self.keys: list = []
        self.args: list = []
        self.ops: list[str] = []
        self.plain: list[tuple | None] = []  # each command as itself; None: the script's alone
        self.extras: list[tuple] = []

    def _queue(self, op: str, key, plain: tuple | None, *args) -> None:
        self.ops.append(op)
        self.keys.append(key)
        self.args += (op, *args)
        self.plain.append(plain)

    def get(self, key) -> None:
        self._queue("g", key, ("GET", key))

    def incr(self, key) -> None:
        self._queue("i", key, ("INCR", key))

    def expire(self, key, seconds: int) -> None:
        self._queue("e", key, ("EXPIRE", key, int(seconds)), int(seconds))

    def set(self, key, value, *, nx: bool, ex: int) -> None:
        if not nx:
            raise ValueError("a batch sets only with NX")
        self._queue("s", key, ("SET", key, value, "NX", "EX", int(ex)), value, int(ex))

    def stamps(self, prefix: str, ex: int, joined: str) -> None:
        """config.core.stamps' read of the space-separated keys `joined`; the reply is the list
        of their stamps."""
        self._queue("m", "-", None, prefix, int(ex), joined)

    def zrevrangebyscore(self, key, max_score, min_score, *, num: int) -> None:
        """The first `num` members from `max_score` down, with their scores: the reply is a
        list of (member, float score), as redis-py's `withscores=True` answers."""
        plain = ("ZREVRANGEBYSCORE", key, max_score, min_score, "WITHSCORES", "LIMIT", 0, int(num))
        self._queue("z", key, plain, max_score, min_score, int(num))

    def zcard(self, key) -> None:
        self._queue("c", key, ("ZCARD", key))

    def __len__(self) -> int:
        return len(self.ops)

    def command(self, *args) -> int:
        """Queues a command of its own (any command; a script goes as EVAL, its text and all,
        since a cached script's NOSCRIPT could not be retried alone), sent in the same packet
        after the batch's script. Its reply comes back raw (`Replies.reply(i)`, `i` being what
        this returns): RESP as hiredis reads it, an error reply as the exception object."""
        self.extras.append(args)
        return len(self.extras) - 1

    def execute(self) -> Replies:
        """The replies of the queued commands, in order; those of `command` in `.extras`."""
        if not self.keys and not self.extras:
            return Replies()
        if self.keys and None not in self.plain:
            return self._execute_plain()
        packed = []
        if self.keys:
            packed.append(
                hiredis.pack_command(
                    ("EVALSHA", _BATCH_SHA, len(self.keys), *self.keys, *self.args)
                )
            )
        packed += [hiredis.pack_command(args) for args in self.extras]
        raw = commands_run(self.client, packed)
        if self.keys and isinstance(raw[0], redis.exceptions.NoScriptError):
            # The server forgot the script (restarted, flushed): once more, with its text.
            raw[0] = command_run(
                self.client, "EVAL", _BATCH_SCRIPT, len(self.keys), *self.keys, *self.args
            )
        if self.keys and isinstance(raw[0], Exception):
            raise raw[0]
        replies = (
            Replies(_answer(op, reply) for op, reply in zip(self.ops, raw[0], strict=True))
            if self.keys
            else Replies()
        )
        replies.extras = raw[1:] if self.keys else raw
        return replies

    def _execute_plain(self) -> Replies:
        """A batch of plain commands only (no stamps read), sent as those commands, one packet:
        Redis runs five plain commands in about a third of the CPU of one script call that
        runs them (9 us), and the client packs and reads them for less too. They are not
        atomic as a script is, and nothing queued this way relies on that: a token's stamp
        read as missing right after its SET NX is never cached (accounts.tokens); a Following
        inbox's EXPIRE, range and size were always read unlocked by feed.inbox.read too (a
        rebuild replaces the inbox in one MULTI; only an account's deletion drops it)."""
        packed = [hiredis.pack_command(args) for args in (*self.plain, *self.extras)]
        raw = commands_run(self.client, packed)
        count = len(self.ops)
        for reply in raw[:count]:
            if isinstance(reply, Exception):
                raise reply  # as the script's call would have failed as a whole
        replies = Replies(
            _answer(op, reply) for op, reply in zip(self.ops, raw[:count], strict=True)
        )
        replies.extras = raw[count:]
        return replies


class Replies(list):
    """A `Batch`'s replies: one per script command, and `extras`, those of `Batch.command`."""

    extras: list = []

    def reply(self, index: int):
        """The raw reply of the `Batch.command` that answered `index`; an error reply raises."""
        reply = self.extras[index]
        if isinstance(reply, Exception):
            raise reply
        return reply

    def check(self) -> None:
        """Raises the first error reply among `extras`, as a pipeline's `execute` would."""
        for reply in self.extras:
            if isinstance(reply, Exception):
                raise reply


def hash_reply(raw) -> dict:
    """HGETALL's raw reply as redis-py answers it: a dict (what hiredis reads), also from the
    flat list of fields and values a script returns."""
    if isinstance(raw, dict):
        return raw
    return dict(zip(raw[::2], raw[1::2], strict=True)) if raw else {}


def _answer(op: str, reply):
    """A script's reply to one batch command, as redis-py answers that command."""
    if op == "e":
        return bool(reply)
    if op == "s":
        return True if reply else None
    if op == "z":
        if reply and isinstance(reply[0], list):
            # The command itself on a RESP3 connection: pairs, each score a double.
            return [(member, float(score)) for member, score in reply]
        return [(reply[i], float(reply[i + 1])) for i in range(0, len(reply), 2)]
    return reply


# When this process last carried on without Redis (`degraded`), by time.monotonic().
_last_degraded = float("-inf")


def degraded(component: str, subject: object = "") -> None:
    """Call from the `except` block of code that carries on without Redis (or the broker): one
    warning line naming the error (a traceback per request would flood the logs of an outage),
    one count for the dashboards."""
    global _last_degraded
    _last_degraded = time.monotonic()
    DEGRADED.labels(component).inc()
    error = sys.exc_info()[1]
    logger.warning("redis unavailable, %s degraded %s: %r", component, subject, error)


def recently_degraded(seconds: float = 10.0) -> bool:
    """Whether this process carried on without Redis in the last `seconds`. For writes that
    may be skipped (each has a bound on what skipping it costs): against a frozen Redis every
    call waits out its timeout, and a request that already waited once should not wait again
    for an optional one."""
    return time.monotonic() - _last_degraded < seconds


def publish(task: Any, *args: Any, **options: Any) -> None:
    """Sends a Celery task now, giving up after about TIMEOUT_SECONDS when the broker is down
    (raises kombu.exceptions.OperationalError). For tasks whose message something re-sends, or
    whose loss is harmless. Never stores the result (CELERY_TASK_IGNORE_RESULT says why).

    Written straight to the broker when Celery would write nothing else (config.core.broker:
    one `LPUSH` instead of kombu's producer); else through `apply_async`."""
    from .broker import lean_send

    if lean_send(task, args, options) is not None:
        return
    task.apply_async(
        args=args, ignore_result=True, retry=True, retry_policy=PUBLISH_RETRY_POLICY, **options
    )


def enqueue_after_commit(task: Any, *args: Any, component: str, **options: Any) -> None:
    """Sends `task` once the surrounding transaction commits. The write it follows stands
    whether or not the broker takes the message: when it is down, `degraded(component)` records
    it and a beat sweeper re-sends the work later (each caller names its sweeper)."""
    from django.db import transaction

    from .errors import BACKEND_DOWN_ERRORS

    def send() -> None:
        try:
            publish(task, *args, **options)
        except BACKEND_DOWN_ERRORS:
            degraded(component, args[0] if args else "")

    transaction.on_commit(send)


class SharedRedisCache(RedisCache):
    """Django's Redis cache with one connection pool per process instead of one per request.

    Django keeps a cache object per async context, and under ASGI every request is a new
    context: the stock backend then builds a new client, a new pool and a new TCP connection to
    Redis for each request's first cache call (a connect per throttle check; docs/bench-feed.md
    has the profile). redis-py's pools are thread-safe and start afresh after a fork, so the
    cache objects of a process can share one client per server list and options."""

    @cached_property
    def _cache(self):
        key = (self._class, tuple(self._servers), repr(sorted(self._options.items())))
        client = _SHARED_CLIENTS.get(key)
        if client is None:
            with _SHARED_LOCK:
                client = _SHARED_CLIENTS.setdefault(
                    key, self._class(self._servers, **self._options)
                )
        return client


_SHARED_CLIENTS: dict[tuple, Any] = {}
_SHARED_LOCK = threading.Lock()


def _channel_layer_base():
    from channels_redis.core import RedisChannelLayer

    return RedisChannelLayer


class ChannelLayer(_channel_layer_base()):
    """The websocket fan-out layer (settings.CHANNEL_LAYERS), with its blocking pop shorter
    than the Redis client's socket timeout.

    channels_redis waits for a consumer's next message with BZPOPMIN for `brpop_timeout`
    (5 s), and redis-py 8 gives every socket a 5 s read timeout: an idle consumer's read
    timed out just as the pop came back empty, the receive loop raised TimeoutError and the
    websocket closed, so an app left open without events lost its connection after about 5 s
    (and with it the progress of a running generation). Waiting 2 s per pop keeps the read
    well inside the timeout; an idle process pays one cheap command every 2 s. Raising the
    socket timeout instead would keep a closing consumer's read blocked that much longer.

    A pop that comes back empty while its task is being cancelled ends the task. When a
    websocket closes, channels cancels its consumer's receive; the one receive that holds the
    layer's lock is inside the pop, and redis-py's read timeout (`asyncio.timeout` on Python
    3.11) can swallow that cancellation, so channels_redis kept popping every 2 s for a
    consumer that was gone, until a message for some other consumer of the process arrived
    (tests/accounts/test_realtime_server.py)."""

    brpop_timeout = 2

    async def _brpop_with_clean(self, index, channel, timeout):
        got = await super()._brpop_with_clean(index, channel, timeout)
        task = asyncio.current_task()
        if got is None and task is not None and task.cancelling():
            raise asyncio.CancelledError
        return got

"""Celery task messages put on the Redis broker in one `LPUSH`, without kombu's producer.

`config.core.redis.publish` sends most of Riff's tasks from inside a request: the generation job
after admission commits, For You's order refresh, an embedding after a post. Celery's
`apply_async` spent 350-390 us of the publishing process's CPU on each (the router, a producer
taken from its pool, kombu's retry wrapper, the channel, its declare cache, serialisation in
three layers; 16 % of an admission's CPU, docs/bench-feed.md). What it finally sends to Redis is
one `LPUSH` of a JSON envelope onto the queue's list. `lean_send` writes that same message
itself and pushes it on this thread's own Redis connection (config.core.redis.commands_run):
the message a worker reads is the one Celery would have written, field for field (task
protocol 2, the json serializer, base64 body, kombu's Redis envelope);
tests/test_broker_messages.py holds the two equal for every task `publish` sends and runs them
on a real worker.

It answers None, and Celery's own path sends the task, whenever anything could make Celery's
message differ or Celery do more than push it: options other than the queue (countdown, eta,
expires, priority...), a task with execution options of its own, a call from inside a running
task (the message would carry its parent's ids), a queue Celery has not set up yet (its first
send creates it), `before_task_publish`/`after_task_publish` receivers, eager mode, another
serializer, protocol or compression, a broker other than `REDIS_URL`'s Redis, or transport
options that move keys (a key prefix, priority steps, fan-out prefixes). With
`task_send_sent_event` on, the `task-sent` event Celery's dispatcher would publish goes in the
same round trip (a `PUBLISH` on the channel kombu's transport uses for the event exchange).

A broker that does not answer raises kombu's `OperationalError`, as Celery's send does with
`PUBLISH_RETRY_POLICY` (no retries): callers already treat that as "the broker is down".
"""

from __future__ import annotations

import base64
import functools
import json
import os
import time
import uuid
from dataclasses import dataclass
from typing import Any

import hiredis
import redis
from celery import signals
from celery.utils.nodenames import anon_nodename
from celery.utils.saferepr import saferepr
from celery.utils.time import utcoffset
from django.conf import settings
from kombu.exceptions import OperationalError

from .redis import commands_run, redis_client

# Transport options that do not change where or how a message is written (the visibility
# timeout and the socket timeouts matter to consumers and connections only).
PLAIN_TRANSPORT_OPTIONS = frozenset(
    {"visibility_timeout", "socket_timeout", "socket_connect_timeout"}
)
# A task's own execution options (`Task._get_exec_options`) that leave the message as below.
PLAIN_EXEC_OPTIONS = frozenset({"serializer", "time_limit", "soft_time_limit"})
# The body's third part: no callbacks, errbacks, chain or chord.
EMBED = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}


class _QueueUnknown(LookupError):
    pass


@dataclass(frozen=True)
class _Plan:
    """What `lean_send` writes the same way for every message of one task to one queue."""

    queue_name: str
    delivery_mode: int
    timelimit: tuple
    sent_event: bool
    # Whether the `task-sent` event, when asked for, can be written as `_sent_event` does.
    event_plain: bool


def _broker_plain(conf) -> bool:
    """Whether this process's Celery configuration writes messages the way `lean_send` does."""
    return (
        str(conf.broker_url) == settings.REDIS_URL
        and str(conf.broker_url).startswith(("redis://", "rediss://"))
        and not conf.task_always_eager
        and conf.task_protocol == 2
        and conf.task_serializer == "json"
        and not conf.task_compression
        and set(conf.broker_transport_options or {}) <= PLAIN_TRANSPORT_OPTIONS
    )


@functools.lru_cache(maxsize=256)
def _plan(task, queue_name: str | None) -> _Plan | None:
    """`task`'s plan for `queue_name` (None: its route), or None when Celery must send it.
    Celery's configuration is read here once per task and queue: its settings are a chain of
    mappings that cost microseconds a look-up (`forget_plans` reads them again)."""
    app = task.app
    conf = app.conf
    if not _broker_plain(conf):
        return None
    exec_options = task._get_exec_options()
    if {k for k, v in exec_options.items() if v is not None} - PLAIN_EXEC_OPTIONS or (
        exec_options.get("serializer") not in (None, "json")
    ):
        return None
    if queue_name is None:
        routes = conf.task_routes
        route = routes.get(task.name) if isinstance(routes, dict) else None
        queue_name = route.get("queue") if isinstance(route, dict) and len(route) == 1 else None
    if not isinstance(queue_name, str):
        return None
    queue = app.amqp.queues.get(queue_name)
    if queue is None:
        # Not set up yet: Celery's first send to it does that. Raised, so not cached.
        raise _QueueUnknown(queue_name)
    if queue.exchange.type != "direct" or queue.max_priority:
        return None
    dispatcher = app.amqp._event_dispatcher
    mode = queue.exchange.delivery_mode or conf.task_default_delivery_mode
    return _Plan(
        queue_name=queue_name,
        delivery_mode={"persistent": 2, "transient": 1}.get(mode, mode),
        timelimit=(task.time_limit, task.soft_time_limit),
        sent_event=bool(conf.task_send_sent_event),
        event_plain=dispatcher.exchange.type == "fanout" and dispatcher.serializer == "json",
    )


def forget_plans() -> None:
    """Reads Celery's configuration again at the next send (tests that change it)."""
    _plan.cache_clear()


_origin: tuple[int, str] | None = None


def _origin_name() -> str:
    """Celery's `anon_nodename()` (`gen<pid>@<host>`), worked out once per process."""
    global _origin
    pid = os.getpid()
    if _origin is None or _origin[0] != pid:
        _origin = (pid, anon_nodename())
    return _origin[1]


def _repr_plain(value) -> bool:
    # Strings saferepr writes as repr() does: printable, no quote or backslash to escape.
    return (
        type(value) is str
        and len(value) < 200
        and value.isprintable()
        and "'" not in value
        and "\\" not in value
    )


def _argsrepr(args: tuple, app) -> str:
    if len(args) < 4 and all(_repr_plain(a) for a in args):
        return repr(args)  # saferepr's answer for a few plain strings, without its walk
    return saferepr(args, app.amqp.argsrepr_maxsize, maxlevels=app.conf.task_repr_maxlevels)


def message_for(task, args: tuple, plan: _Plan, task_id: str) -> tuple[dict, dict]:
    """(the message `lean_send` pushes, as a dict, and the `task-sent` event's fields) for
    `task(*args)` by `plan`, its result ignored, with this id."""
    argsrepr = _argsrepr(args, task.app)
    headers = {
        "lang": "py",
        "task": task.name,
        "id": task_id,
        "shadow": None,
        "eta": None,
        "expires": None,
        "group": None,
        "group_index": None,
        "retries": 0,
        "timelimit": list(plan.timelimit),
        "root_id": task_id,
        "parent_id": None,
        "argsrepr": argsrepr,
        "kwargsrepr": "{}",
        "origin": _origin_name(),
        "ignore_result": True,
        "replaced_task_nesting": 0,
        "stamped_headers": None,
        "stamps": {},
    }
    body = json.dumps([list(args), {}, EMBED]).encode()
    message = {
        "body": base64.b64encode(body).decode(),
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": headers,
        "properties": {
            "correlation_id": task_id,
            "reply_to": task.app.thread_oid,
            "delivery_mode": plan.delivery_mode,
            # A direct exchange's queue is sent to through the anonymous exchange, as Celery's
            # send_task_message does.
            "delivery_info": {"exchange": "", "routing_key": plan.queue_name},
            "priority": 0,
            "body_encoding": "base64",
            "delivery_tag": str(uuid.uuid4()),
        },
    }
    sent = {
        "uuid": task_id,
        "root_id": task_id,
        "parent_id": None,
        "name": task.name,
        "args": argsrepr,
        "kwargs": "{}",
        "retries": 0,
        "eta": None,
        "expires": None,
        "queue": plan.queue_name,
        "exchange": "",
        "routing_key": plan.queue_name,
    }
    return message, sent


def lean_send(task, args: tuple, options: dict[str, Any]) -> str | None:
    """Sends `task(*args)` (its result ignored) as described above and returns the task's id,
    or returns None having sent nothing: then the caller sends it through Celery."""
    if options.keys() - {"queue"}:
        return None
    # `shared_task` hands out a proxy, which works out its task on every attribute and hash.
    task = getattr(task, "_get_current_object", lambda: task)()
    queue_name = options.get("queue")
    if queue_name is not None and not isinstance(queue_name, str):
        return None
    try:
        plan = _plan(task, queue_name)
    except _QueueUnknown:
        return None
    if plan is None:
        return None
    if signals.before_task_publish.receivers or signals.after_task_publish.receivers:
        return None
    app = task.app
    if app.current_worker_task is not None:
        return None
    header = getattr(task, "__header__", None) if task.typing else None
    if header is not None:
        # Celery's own check: arguments that don't fit the task raise here, not on a worker.
        header(*args)
    # A change made after the plan (tests, the bench's) is in the configuration's changes: a
    # dict look-up, where reading the setting itself walks Celery's chain of mappings (~7 us).
    event = app.conf.changes.get("task_send_sent_event", plan.sent_event)
    if event and not plan.event_plain:
        return None
    task_id = str(uuid.uuid4())
    message, sent = message_for(task, args, plan, task_id)
    commands = [("LPUSH", plan.queue_name, json.dumps(message))]
    if event:
        commands.append(_sent_event(app, sent))
    _push(commands)
    return task_id


def _sent_event(app, fields: dict) -> tuple:
    """The `PUBLISH` of the `task-sent` event Celery's dispatcher would send for `fields`, on
    the channel kombu's Redis transport publishes the fanout exchange's messages to."""
    dispatcher = app.amqp._event_dispatcher
    with dispatcher.mutex:
        clock = dispatcher.clock.forward()
    event = {
        "hostname": dispatcher.hostname,
        "utcoffset": utcoffset(),
        "pid": dispatcher.pid,
        "clock": clock,
        **fields,
        "timestamp": time.time(),
        "type": "task-sent",
    }
    exchange = dispatcher.exchange.name
    message = {
        "body": base64.b64encode(json.dumps(event).encode()).decode(),
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": {"hostname": dispatcher.hostname},
        "properties": {
            "body_encoding": "base64",
            "delivery_info": {"exchange": exchange, "routing_key": "task.sent"},
            "delivery_mode": 1,
            "delivery_tag": str(uuid.uuid4()),
            "priority": 0,
        },
    }
    db = redis_client().connection_pool.connection_kwargs.get("db", 0)
    return ("PUBLISH", f"/{db}.{exchange}/task.sent", json.dumps(message))


def _push(commands: list[tuple]) -> None:
    """The commands in one round trip; the message's `LPUSH` goes first."""
    packed = [hiredis.pack_command(command) for command in commands]
    try:
        replies = commands_run(redis_client(), packed)
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as error:
        raise OperationalError(f"the broker did not take the message: {error}") from error
    for reply in replies:
        if isinstance(reply, Exception):
            raise OperationalError(f"the broker refused the message: {reply}") from reply

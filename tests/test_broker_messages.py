"""config.core.broker: what the lean send pushes is the message Celery writes, and whatever
Celery would write differently still goes through Celery. (tests/e2e/test_broker_lean.py runs a
lean message on a real worker.)"""

import base64
import importlib
import inspect
import json
import time
import uuid

import pytest
import redis
from celery import signals
from celery._state import _task_stack
from django.conf import settings
from kombu.exceptions import OperationalError

from config.celery import TASK_QUEUES, app
from config.core import broker
from config.core.errors import BACKEND_DOWN_ERRORS
from config.core.redis import PUBLISH_RETRY_POLICY, publish

ID = "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"


@pytest.fixture
def queues():
    """The broker's client; the test's messages are popped, and the lists' other entries (left
    by other tests) stay as they were."""
    client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    before = {q: client.llen(q) for q in ("default", "media", "gpu")}
    yield client
    assert {q: client.llen(q) for q in before} == before


def _newest(client, queue: str) -> dict:
    raw = client.lpop(queue)  # LPUSH puts a message at the head
    assert raw is not None
    return json.loads(raw)


def _celery_send(task, args, **options):
    # What config.core.redis.publish did before the lean path, and still does when it says no.
    task.apply_async(
        args=args, ignore_result=True, retry=True, retry_policy=PUBLISH_RETRY_POLICY, **options
    )


def _normalised(message: dict) -> dict:
    """The message with its per-message ids replaced (checked to be what Celery makes them)."""
    headers, props = dict(message["headers"]), dict(message["properties"])
    task_id = headers["id"]
    uuid.UUID(task_id)
    uuid.UUID(props["delivery_tag"])
    assert headers["root_id"] == props["correlation_id"] == task_id
    headers.update(id="<id>", root_id="<id>")
    props.update(correlation_id="<id>", delivery_tag="<tag>")
    return {**message, "headers": headers, "properties": props}


# The tasks requests publish (config.core.redis.publish, enqueue_after_commit): all go lean.
SENT_FROM_REQUESTS = {
    "generation.tasks.generation_run",
    "feed.tasks.feed_order_refresh",
    "feed.tasks.post_fanout",
    "feed.tasks.post_embed",
    "feed.tasks.preference_embed",
    "cameos.tasks.cameo_verify",
    "generation.webhooks.tasks.webhook_deliver",
}


def _positional(task) -> int:
    run = task.run
    return len(inspect.signature(run).parameters)


@pytest.mark.parametrize("name", sorted(TASK_QUEUES))
@pytest.mark.parametrize(
    "values", [(ID, ID), ("a b", "ümlaut 😀"), ("it's", "x"), ("back\\slash", "\n")]
)
def test_every_task_is_written_as_celery_writes_it(queues, name, values):
    module, _, attr = name.rpartition(".")
    task = getattr(importlib.import_module(module), attr)
    queue = TASK_QUEUES[name]
    args = values[: _positional(task)]
    _celery_send(task, args)
    theirs = _newest(queues, queue)
    if broker.lean_send(task, args, {}) is None:
        # Only a task with execution options of its own (an expiry) is left to Celery.
        own = {k for k, v in task._get_exec_options().items() if v is not None}
        assert own - broker.PLAIN_EXEC_OPTIONS == {"expires"}
        assert name not in SENT_FROM_REQUESTS
        return
    ours = _newest(queues, queue)
    # The body byte for byte; the rest field for field, ids aside.
    assert ours["body"] == theirs["body"]
    assert json.loads(base64.b64decode(ours["body"])) == [list(args), {}, broker.EMBED]
    assert _normalised(ours) == _normalised(theirs)
    assert ours["headers"]["id"] != theirs["headers"]["id"]


def test_publish_with_a_queue_option_goes_lean_to_that_queue(queues):
    from generation.tasks import generation_run

    assert broker.lean_send(generation_run, (ID,), {"queue": "gpu"})
    ours = _newest(queues, "gpu")
    _celery_send(generation_run, (ID,), queue="gpu")
    assert _normalised(ours) == _normalised(_newest(queues, "gpu"))
    publish(generation_run, ID, queue="gpu")  # through the lean path
    assert _newest(queues, "gpu")["headers"]["argsrepr"] == f"('{ID}',)"


def test_anything_celery_writes_differently_goes_through_celery(queues, monkeypatch):
    from feed.tasks import feed_order_refresh

    for options in ({"countdown": 5}, {"expires": 30}, {"priority": 3}, {"queue": object()}):
        assert broker.lean_send(feed_order_refresh, (ID,), options) is None
    publish(feed_order_refresh, ID, countdown=60)
    assert _newest(queues, "default")["headers"]["eta"] is not None  # Celery's, with its eta


def test_a_publish_signal_receiver_hears_every_send(queues):
    from feed.tasks import feed_order_refresh

    heard = []

    def receiver(sender=None, headers=None, **_):
        heard.append((sender, headers["argsrepr"]))

    signals.before_task_publish.connect(receiver, weak=False)
    try:
        assert broker.lean_send(feed_order_refresh, (ID,), {}) is None
        publish(feed_order_refresh, ID)
    finally:
        signals.before_task_publish.disconnect(receiver)
    assert heard == [("feed.tasks.feed_order_refresh", f"('{ID}',)")]
    _newest(queues, "default")


def test_a_send_from_inside_a_task_carries_its_parent_through_celery(queues):
    from feed.tasks import feed_order_refresh, preference_embed

    parent_id = str(uuid.uuid4())
    preference_embed.push_request(id=parent_id, root_id=parent_id, called_directly=False)
    _task_stack.push(preference_embed)
    try:
        assert broker.lean_send(feed_order_refresh, (ID,), {}) is None
        publish(feed_order_refresh, ID)
    finally:
        _task_stack.pop()
        preference_embed.pop_request()
    headers = _newest(queues, "default")["headers"]
    assert (headers["parent_id"], headers["root_id"]) == (parent_id, parent_id)


def test_a_queue_celery_has_not_set_up_is_set_up_by_its_first_send(queues):
    from feed.tasks import feed_order_refresh

    name = f"riff-test-{uuid.uuid4().hex[:8]}"
    try:
        assert broker.lean_send(feed_order_refresh, (ID,), {"queue": name}) is None
        publish(feed_order_refresh, ID, queue=name)  # Celery's: creates the queue
        assert broker.lean_send(feed_order_refresh, (ID,), {"queue": name})
        first, second = (json.loads(m) for m in queues.lrange(name, 0, -1)[::-1])
        assert _normalised(second) == _normalised(first)
    finally:
        queues.delete(name)
        app.amqp.queues.pop(name, None)


def test_transport_options_that_move_keys_send_through_celery(monkeypatch):
    from feed.tasks import feed_order_refresh

    options = dict(app.conf.broker_transport_options)
    monkeypatch.setattr(
        app.conf, "broker_transport_options", {**options, "global_keyprefix": "riff:"}
    )
    broker.forget_plans()
    try:
        assert broker.lean_send(feed_order_refresh, (ID,), {}) is None
    finally:
        monkeypatch.undo()
        broker.forget_plans()
    assert broker._plan(feed_order_refresh, None) is not None


def test_a_broker_that_does_not_answer_raises_what_callers_treat_as_down(monkeypatch, queues):
    from feed.tasks import feed_order_refresh

    dead = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=1, socket_timeout=1)
    monkeypatch.setattr(broker, "redis_client", lambda: dead)
    with pytest.raises(OperationalError) as raised:
        publish(feed_order_refresh, ID)
    assert isinstance(raised.value, BACKEND_DOWN_ERRORS)


def test_an_error_reply_raises_and_leaves_the_key_as_it_was(queues):
    from feed.tasks import feed_order_refresh

    name = f"riff-test-{uuid.uuid4().hex[:8]}"
    app.amqp.queues.select_add(name)
    queues.set(name, "not a list")
    try:
        with pytest.raises(OperationalError, match="WRONGTYPE"):
            broker.lean_send(feed_order_refresh, (ID,), {"queue": name})
        assert queues.get(name) == b"not a list"
    finally:
        queues.delete(name)
        app.amqp.queues.pop(name, None)


def test_arguments_that_do_not_fit_the_task_raise_and_send_nothing(queues):
    from feed.tasks import feed_order_refresh

    with pytest.raises(TypeError):
        broker.lean_send(feed_order_refresh, (ID, ID), {})
    with pytest.raises(TypeError):
        publish(feed_order_refresh)


def test_argsrepr_is_saferepr_for_every_shape():
    from celery.utils.saferepr import saferepr

    samples = [
        (),
        (ID,),
        ("x" * 199,),
        ("x" * 5000,),
        ("it's", 'say "hi"'),
        ("tab\there", "\x00"),
        (1, 2.5, None),
        ("a", "b", "c", "d"),
        ({"nested": ["list"]},),
    ]
    for args in samples:
        expected = saferepr(args, app.amqp.argsrepr_maxsize, maxlevels=app.conf.task_repr_maxlevels)
        assert broker._argsrepr(args, app) == expected, args


def _events(pubsub, count: int) -> list[tuple[bytes, dict]]:
    got = []
    deadline = time.monotonic() + 5
    while len(got) < count and time.monotonic() < deadline:
        message = pubsub.get_message(timeout=0.2)
        if message and message["type"] == "pmessage":
            got.append((message["channel"], json.loads(message["data"])))
    return got


def _event_normalised(message: dict) -> dict:
    body = json.loads(base64.b64decode(message["body"]))
    assert body["uuid"] == body["root_id"]
    uuid.UUID(message["properties"]["delivery_tag"])
    assert isinstance(body.pop("clock"), int) and abs(body.pop("timestamp") - time.time()) < 60
    body.update(uuid="<id>", root_id="<id>")
    props = {**message["properties"], "delivery_tag": "<tag>"}
    return {**message, "body": body, "properties": props}


def test_the_task_sent_event_is_the_one_celery_publishes(queues, monkeypatch):
    from feed.tasks import feed_order_refresh

    monkeypatch.setattr(app.conf, "task_send_sent_event", True)
    pubsub = queues.pubsub()
    pubsub.psubscribe("*celeryev*")
    try:
        assert pubsub.get_message(timeout=2)["type"] == "psubscribe"
        _celery_send(feed_order_refresh, (ID,))
        (theirs,) = _events(pubsub, 1)
        sent_id = broker.lean_send(feed_order_refresh, (ID,), {})
        (ours,) = _events(pubsub, 1)
    finally:
        pubsub.close()
    _newest(queues, "default")
    _newest(queues, "default")
    assert ours[0] == theirs[0]  # the channel: /<db>.celeryev/task.sent
    assert json.loads(base64.b64decode(ours[1]["body"]))["uuid"] == sent_id
    assert _event_normalised(ours[1]) == _event_normalised(theirs[1])
    # The dispatcher's logical clock moves on with each event, whoever sent it.
    clocks = [json.loads(base64.b64decode(m["body"]))["clock"] for _, m in (theirs, ours)]
    assert clocks[1] > clocks[0]

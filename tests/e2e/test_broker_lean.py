"""A message config.core.broker pushed is taken and run by a real Celery worker, with the
arguments it was sent with (tests/test_broker_messages.py holds it equal to Celery's)."""

import threading
import uuid

import pytest
from celery.signals import task_postrun

from config.core import broker

pytestmark = pytest.mark.django_db(transaction=True)


def test_lean_messages_run_on_a_real_worker(celery_worker, make_user):
    from feed.ranking.snapshot import current
    from feed.tasks import feed_order_refresh

    viewer = make_user()
    gone = str(uuid.uuid4())
    ran: dict[str, tuple] = {}
    both = threading.Event()

    def record(task_id=None, task=None, args=None, retval=None, state=None, **_):
        ran[task_id] = (task.name, list(args), retval, state)
        if len(ran) >= 2:
            both.set()

    task_postrun.connect(record, weak=False)
    try:
        first = broker.lean_send(feed_order_refresh, (str(viewer.pk),), {})
        second = broker.lean_send(feed_order_refresh, (gone,), {})
        assert first and second
        assert both.wait(30), ran
    finally:
        task_postrun.disconnect(record)
    name = "feed.tasks.feed_order_refresh"
    assert ran[first][:2] == (name, [str(viewer.pk)]) and ran[first][3] == "SUCCESS"
    assert ran[second] == (name, [gone], 0, "SUCCESS")  # a viewer who is gone: an empty order
    assert current(user_id=viewer.pk) is not None  # the worker saved the viewer's order

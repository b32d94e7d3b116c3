"""config.core.stamps: deletes a failing Redis made `stamps_drop` skip are kept and done later."""

from __future__ import annotations

import time

import pytest
import redis

from config.core import redis as redis_module
from config.core import stamps
from config.core.redis import degraded, redis_client


def _blip() -> None:
    """This process just carried on without Redis (what any degraded component records)."""
    try:
        raise redis.exceptions.ConnectionError("blip")
    except redis.exceptions.ConnectionError:
        degraded("test")


def _blip_over() -> None:
    redis_module._last_degraded = float("-inf")


def test_a_drop_in_a_blip_waits_for_nothing_and_happens_before_the_next_read():
    before = stamps.stamps_read(["t:a", "t:b"])
    _blip()
    stamps.stamps_drop(["t:a"])
    # Not tried in the request (it would wait out a timeout) ...
    assert redis_client().get("t:a") == before[0]
    assert stamps.stamps_read(["t:a"]) is None  # ... and nobody trusts a stamp meanwhile.
    _blip_over()
    after = stamps.stamps_read(["t:a", "t:b"])
    assert after[0] != before[0] and after[1] == before[1]
    assert stamps._pending == {}


def test_a_read_batched_with_the_token_check_deletes_the_kept_stamps_first():
    before = stamps.stamps_read(["t:a"])
    _blip()
    stamps.stamps_drop(["t:a"])
    _blip_over()
    batch = redis_module.Batch(redis_client())
    take = stamps.stamps_queue(batch, ["t:a"])
    assert take(batch.execute())["t:a"] != before[0]


def test_the_timer_deletes_kept_stamps_with_no_read_in_this_process(monkeypatch):
    """Other processes hold entries under these stamps: they must go even if this process
    never reads again."""
    monkeypatch.setattr(stamps, "RETRY_SECONDS", 0.05)
    stamps.stamps_read(["t:a"])
    _blip()
    stamps.stamps_drop(["t:a"])
    _blip_over()
    deadline = time.monotonic() + 5
    while redis_client().exists("t:a") and time.monotonic() < deadline:
        time.sleep(0.02)
    assert redis_client().exists("t:a") == 0
    assert stamps._pending == {} and stamps._retry_timer is None


def test_the_timer_waits_out_a_blip_that_goes_on(monkeypatch):
    monkeypatch.setattr(stamps, "RETRY_SECONDS", 0.05)
    stamps.stamps_read(["t:a"])
    _blip()
    stamps.stamps_drop(["t:a"])
    time.sleep(0.3)  # the timer fired inside the blip: kept, and timed again
    assert redis_client().exists("t:a") == 1
    assert list(stamps._pending) == ["t:a"] and stamps._retry_timer is not None
    _blip_over()
    deadline = time.monotonic() + 5
    while redis_client().exists("t:a") and time.monotonic() < deadline:
        time.sleep(0.02)
    assert redis_client().exists("t:a") == 0


def test_a_delete_that_fails_is_kept(monkeypatch):
    stamps.stamps_read(["t:a"])
    real = redis_module.redis_client

    class Refusing:
        def delete(self, *keys):
            raise redis.exceptions.ConnectionError("refused")

    monkeypatch.setattr(stamps, "redis_client", lambda: Refusing())
    stamps.stamps_drop(["t:a", "t:b"])
    assert list(stamps._pending) == ["t:a", "t:b"]
    assert redis_module.recently_degraded()
    _blip_over()
    stamps.stamps_drop(["t:b", "t:d"])  # fails too: the kept keys it took along stay kept
    assert sorted(stamps._pending) == ["t:a", "t:b", "t:d"]
    monkeypatch.setattr(stamps, "redis_client", real)
    _blip_over()
    stamps.stamps_drop(["t:c"])  # the next delete that works takes the kept ones along
    assert redis_client().exists("t:a") == 0 and stamps._pending == {}


def test_kept_deletes_are_bounded(monkeypatch):
    monkeypatch.setattr(stamps, "PENDING_LIMIT", 3)
    _blip()
    stamps.stamps_drop(["t:1", "t:2"])
    stamps.stamps_drop(["t:3", "t:4"])
    assert list(stamps._pending) == ["t:2", "t:3", "t:4"]


@pytest.mark.django_db(transaction=True)
def test_inside_a_transaction_the_commit_drop_is_kept_too():
    from django.db import transaction

    before = stamps.stamps_read(["t:a"])
    with transaction.atomic():
        stamps.stamps_drop(["t:a"])  # deleted now (no blip) ...
        stamps.stamps_read(["t:a"])  # ... a reader inside sets a new one ...
        _blip()
    # ... and the commit's delete, skipped in the blip, is kept.
    assert list(stamps._pending) == ["t:a"]
    _blip_over()
    assert stamps.stamps_read(["t:a"])[0] not in (None, before[0])


def test_a_batched_read_does_not_wait_on_kept_deletes_while_redis_fails(monkeypatch):
    """Within the seconds after a failure, the token check's batch must not try the kept
    deletes first: against a frozen Redis each request would wait out two timeouts."""
    stamps.stamps_read(["t:a"])
    _blip()
    stamps.stamps_drop(["t:a"])
    tried = []
    monkeypatch.setattr(stamps, "flush_pending", lambda: tried.append(1))
    batch = redis_module.Batch(redis_client())
    stamps.stamps_queue(batch, ["t:a"])
    assert tried == [] and list(stamps._pending) == ["t:a"]

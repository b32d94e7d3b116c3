"""The sliding-window counter behind the per-user and per-address throttles
(config.core.throttles.WindowCounterMixin), on the real Redis with a controlled clock."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import AnonymousUser
from rest_framework.test import APIRequestFactory

from config.core.throttles import UserThrottle


class Clock:
    def __init__(self, now: float):
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def throttle(monkeypatch):
    clock = Clock(6_000_000.0)  # the start of a 60-second window

    def make():
        t = UserThrottle()
        t.rate, (t.num_requests, t.duration) = "4/min", (4, 60)
        t.timer = clock
        return t

    return make, clock


def _request(address: str):
    request = APIRequestFactory().get("/", REMOTE_ADDR=address)
    request.user = AnonymousUser()
    return request


def _allowed(make, request) -> tuple[bool, float | None]:
    t = make()
    ok = t.allow_request(request, None)
    return ok, (None if ok else t.wait())


def test_the_limit_holds_within_a_window_and_slides_into_the_next(throttle):
    make, clock = throttle
    request = _request("203.0.113.9")
    assert [_allowed(make, request)[0] for _ in range(4)] == [True] * 4
    ok, wait = _allowed(make, request)
    assert (ok, wait) == (False, 60.0)
    # A quarter into the next window, three quarters of the previous five still count (3.75).
    clock.now += 75
    assert _allowed(make, request) == (True, None)  # 3.75 + 0 < 4
    ok, wait = _allowed(make, request)  # 3.75 + 1 >= 4: refused until the old share decays
    # Free again once 5 x weight <= 2, that is 21 s later (weight 0.75 -> 0.4).
    assert not ok and wait == pytest.approx(21.0)
    # A window later nothing of the first is left.
    clock.now += 60
    assert [_allowed(make, request)[0] for _ in range(2)] == [True, True]


def test_callers_are_counted_apart(throttle):
    make, _ = throttle
    one = _request("203.0.113.1")
    two = _request("203.0.113.2")
    for _ in range(4):
        assert _allowed(make, one)[0]
    assert not _allowed(make, one)[0]
    assert _allowed(make, two)[0]

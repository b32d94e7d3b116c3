"""config.core.postgres: the pool pings a connection on checkout only when it may have gone bad.

Against the test database's real server: a connection handed out a moment ago and silent
since is not pinged, an older one is, and one whose backend was terminated is noticed (its
socket has the server's goodbye on it), dropped, and replaced before any request sees it."""

from __future__ import annotations

import time

import psycopg
import pytest
from django.db import connection
from psycopg_pool import ConnectionPool

from config.core.postgres import base

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def pings(monkeypatch):
    """Counts psycopg_pool's own check (the empty query) as the pool runs it."""
    count = {"n": 0}
    stock = ConnectionPool.check_connection

    def counted(conn):
        count["n"] += 1
        stock(conn)

    monkeypatch.setattr(base.ConnectionPool, "check_connection", staticmethod(counted))
    return count


@pytest.fixture
def pool():
    params = connection.get_connection_params()
    params["autocommit"] = True
    made = ConnectionPool(
        kwargs=params, min_size=1, max_size=1, check=base.check_unless_fresh, open=False
    )
    made.open(wait=True)
    yield made
    made.close()


def _use(pool) -> int:
    with pool.connection() as conn:
        return conn.execute("SELECT pg_backend_pid()").fetchone()[0]


def test_a_connection_used_a_moment_ago_is_not_pinged(pool, pings):
    first = _use(pool)  # a fresh connection: never handed out before, so pinged
    assert pings["n"] == 1
    for _ in range(20):
        assert _use(pool) == first
    assert pings["n"] == 1


def test_a_connection_idle_past_the_window_is_pinged(pool, pings, monkeypatch):
    monkeypatch.setattr(base, "FRESH_SECONDS", 0.05)
    first = _use(pool)
    assert _use(pool) == first and pings["n"] == 1
    time.sleep(0.1)
    assert _use(pool) == first and pings["n"] == 2


def test_a_terminated_backend_is_replaced_before_anyone_uses_it(pool, pings):
    first = _use(pool)
    _use(pool)  # handed out a moment ago: inside the window
    with psycopg.connect(**{**connection.get_connection_params(), "autocommit": True}) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", [first])
    time.sleep(0.1)  # the server's goodbye reaches the socket
    # Inside the window, but the socket has input: pinged, found dead, replaced.
    second = _use(pool)
    assert second != first
    assert pings["n"] >= 2
    assert pool.get_stats().get("connections_lost", 0) == 1


def test_django_builds_its_pool_with_this_check(settings):
    from django.db.utils import ConnectionHandler

    db = {**settings.DATABASES["default"]}
    db["OPTIONS"] = {**db["OPTIONS"], "pool": {"min_size": 1, "max_size": 1}}
    assert db["ENGINE"] == "config.core.postgres"
    handler = ConnectionHandler({"default": db})
    wrapper = handler["default"]
    try:
        assert isinstance(wrapper, base.DatabaseWrapper)
        assert wrapper.pool._check is base.check_unless_fresh
        with wrapper.cursor() as cursor:
            cursor.execute("SELECT 1")
            assert cursor.fetchone() == (1,)
    finally:
        wrapper.close()
        wrapper.close_pool()

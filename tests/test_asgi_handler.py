"""config.core.handlers.OneHopASGIHandler: each request's synchronous work runs in one thread
of its own (signals, middleware, view), threads are reused across requests, and requests in
flight at the same time never share one."""

from __future__ import annotations

import asyncio
import json
import threading

import pytest
from django.core.signals import request_finished, request_started
from django.http import JsonResponse, StreamingHttpResponse
from django.test import override_settings
from django.urls import path

from config.core.handlers import MAX_IDLE_THREADS, OneHopASGIHandler, _Threads

pytestmark = pytest.mark.django_db(transaction=True)


def _scope(path: str) -> dict:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"testserver")],
        "client": ("127.0.0.1", 5000),
        "server": ("testserver", 80),
    }


async def _get(app, path: str = "/healthz", sent: list | None = None) -> int:
    scope = _scope(path)
    sent = [] if sent is None else sent
    first = True

    async def receive():
        nonlocal first
        if first:
            first = False
            return {"type": "http.request", "body": b"", "more_body": False}
        await asyncio.sleep(3600)

    async def send(message):
        sent.append(message)

    await app(scope, receive, send)
    return sent[0]["status"]


@pytest.fixture
def seen():
    log: list[tuple[str, int]] = []

    def started(**kwargs):
        log.append(("started", threading.get_ident()))

    def finished(**kwargs):
        log.append(("finished", threading.get_ident()))

    request_started.connect(started)
    request_finished.connect(finished)
    yield log
    request_started.disconnect(started)
    request_finished.disconnect(finished)


def test_a_request_stays_in_one_thread_and_the_next_reuses_it(seen):
    app = OneHopASGIHandler()

    async def two():
        return [await _get(app), await _get(app)]

    assert asyncio.run(two()) == [200, 200]
    threads = {ident for _, ident in seen}
    assert [kind for kind, _ in seen] == ["started", "finished"] * 2
    assert len(threads) == 1 and threading.get_ident() not in threads


def test_requests_in_flight_together_get_threads_of_their_own(seen):
    app = OneHopASGIHandler()
    inside = threading.Barrier(2, timeout=10)

    def hold(**kwargs):
        # Both requests must be inside at once: with one shared thread this would time out.
        inside.wait()

    request_started.connect(hold)
    try:

        async def both():
            return await asyncio.gather(_get(app), _get(app))

        assert asyncio.run(both()) == [200, 200]
    finally:
        request_started.disconnect(hold)
    started = [ident for kind, ident in seen if kind == "started"]
    finished = [ident for kind, ident in seen if kind == "finished"]
    assert len(set(started)) == 2 and set(started) == set(finished)


def test_idle_threads_are_kept_up_to_a_bound():
    threads = _Threads()
    taken = [threads.take() for _ in range(MAX_IDLE_THREADS + 3)]
    assert len({id(e) for e in taken}) == MAX_IDLE_THREADS + 3
    for executor in taken:
        threads.give_back(executor)
    assert len(threads._idle) == MAX_IDLE_THREADS
    assert sum(e._shutdown for e in taken) == 3
    assert threads.take() is taken[MAX_IDLE_THREADS - 1]


def test_a_response_in_memory_costs_one_thread_hop_and_is_closed_before_it_is_sent(seen):
    """Django's own handler makes three hops per request (request_started, the chain, close);
    the one hop carries all three, so `request_finished` comes before any byte is sent."""
    app = OneHopASGIHandler()
    submits = []
    sent_when_finished = []

    async def one():
        scope_sent = []
        original = _Threads.take

        def take(threads):
            executor = original(threads)
            submit = executor.submit

            def counted(*args, **kwargs):
                submits.append(1)
                return submit(*args, **kwargs)

            executor.submit = counted
            return executor

        def finished(**kwargs):
            sent_when_finished.append(len(scope_sent))

        request_finished.connect(finished)
        _Threads.take = take
        try:
            return await _get(app, sent=scope_sent)
        finally:
            _Threads.take = original
            request_finished.disconnect(finished)

    assert asyncio.run(one()) == 200
    assert len(submits) == 1
    assert [kind for kind, _ in seen] == ["started", "finished"]
    assert sent_when_finished == [0]


_MADE: list[int] = []


async def _endless():
    while True:
        _MADE.append(1)
        yield b"x" * 10
        await asyncio.sleep(0.005)


def _stream_view(request):
    return StreamingHttpResponse(_endless())


urlpatterns = [path("stream", _stream_view)]


@override_settings(ROOT_URLCONF=__name__, ALLOWED_HOSTS=["testserver"])
def test_a_stream_stops_and_is_closed_once_when_the_client_goes(seen):
    """A stream is sent while the handler listens for a disconnect, as Django's does: the
    client going ends it, and it is closed (request_finished) once, after the last send."""
    app = OneHopASGIHandler()
    _MADE.clear()
    sent: list = []

    async def run():
        left = asyncio.Event()
        first = True

        async def send(message):
            sent.append(message)
            if len(sent) == 5:
                left.set()

        async def receive():
            nonlocal first
            if first:
                first = False
                return {"type": "http.request", "body": b"", "more_body": False}
            await left.wait()
            return {"type": "http.disconnect"}

        await asyncio.wait_for(app(_scope("/stream"), receive, send), timeout=10)

    asyncio.run(run())
    assert sent[0]["status"] == 200
    bodies = [m for m in sent[1:] if m["type"] == "http.response.body"]
    # Stopped within a chunk or two of the client going, not streamed on.
    assert 4 <= len(bodies) <= 6
    assert len(_MADE) <= len(bodies) + 1
    assert [kind for kind, _ in seen] == ["started", "finished"]


def _orm_view(request):
    from asgiref.sync import async_to_sync

    from accounts.models import User

    users = User.objects.count()
    echoed = async_to_sync(asyncio.sleep)(0, result="echo")
    return JsonResponse({"users": users, "echo": echoed, "thread": threading.get_ident()})


urlpatterns.append(path("orm", _orm_view))


@override_settings(ROOT_URLCONF=__name__, ALLOWED_HOSTS=["testserver"], RIFF_ASGI_INLINE=True)
def test_inline_runs_the_request_on_the_loop_thread_with_the_orm_and_async_to_sync(seen, user):
    """RIFF_ASGI_INLINE: no hop; the ORM and async_to_sync work as in a synchronous worker, and
    the loop is the running one again once the request is done."""
    app = OneHopASGIHandler()
    sent: list = []

    async def one():
        loop = asyncio.get_running_loop()
        status = await _get(app, "/orm", sent=sent)
        assert asyncio.get_running_loop() is loop
        return status

    assert asyncio.run(one()) == 200
    body = json.loads(sent[1]["body"])
    assert body == {"users": 1, "echo": "echo", "thread": threading.get_ident()}
    assert [kind for kind, _ in seen] == ["started", "finished"]
    assert {ident for _, ident in seen} == {threading.get_ident()}


def test_inline_restores_the_loop_when_the_work_raises():
    from config.core.handlers import _inline

    async def one():
        loop = asyncio.get_running_loop()
        with pytest.raises(ZeroDivisionError):
            _inline(lambda: 1 / 0)
        return asyncio.get_running_loop() is loop

    assert asyncio.run(one()) is True


def _echo(request, n):
    return JsonResponse({"n": n, "match": id(request.resolver_match)})


urlpatterns.append(path("echo/<int:n>", _echo))


@override_settings(ROOT_URLCONF=__name__, ALLOWED_HOSTS=["testserver"])
def test_each_paths_match_is_resolved_once_and_misses_still_404():
    from config.core.handlers import _resolved

    _resolved.cache_clear()
    app = OneHopASGIHandler()

    async def run():
        out = []
        for target in ("/echo/1", "/echo/1", "/echo/2", "/nothing", "/nothing"):
            sent: list = []
            status = await _get(app, target, sent)
            body = json.loads(sent[1]["body"]) if status == 200 else None
            out.append((status, body))
        return out

    (s1, b1), (s2, b2), (s3, b3), (s4, _), (s5, _) = asyncio.run(run())
    assert (s1, s2, s3, s4, s5) == (200, 200, 200, 404, 404)
    assert (b1["n"], b2["n"], b3["n"]) == (1, 1, 2)
    assert b1["match"] == b2["match"] != b3["match"]  # the same match object for one path
    info = _resolved.cache_info()
    assert (info.hits, info.currsize) == (1, 2)  # 404s are resolved each time, never kept


def test_the_asgi_entry_point_loads_the_views_and_freezes_the_heap():
    # A fresh interpreter: this test process imported the views long ago.
    import os
    import subprocess
    import sys

    script = (
        "import gc, sys\n"
        "assert 'feed.apis' not in sys.modules\n"
        "import config.asgi\n"
        "print(gc.get_freeze_count(), 'feed.apis' in sys.modules, 'accounts.apis' in sys.modules)"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings", "RIFF_DEV": "1"}
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    frozen, feed_loaded, accounts_loaded = result.stdout.split()
    # Everything start-up made (settings, models, URL patterns, views) is out of the
    # collector's sight; without the freeze the count is 0.
    assert int(frozen) > 50_000
    assert (feed_loaded, accounts_loaded) == ("True", "True")

"""Websockets through a real uvicorn server and the real Redis channel layer: what a client that
goes away leaves behind.

tests/conftest.py gives the test event loop a grace period for consumers that a test leaves
running, because channels_redis's receive did not always finish cancelling under redis-py 8
there. These tests check the production path: a server whose clients close (or just drop the
TCP connection) must end their consumers, and must not keep more Redis connections the more
clients come and go.
"""

from __future__ import annotations

import asyncio
import gc
import json
import time

import pytest
import websockets

from tests.factories import UserFactory, token_for

pytestmark = pytest.mark.django_db(transaction=True)

CLIENTS = 12


def _consumers_running() -> list[asyncio.Task]:
    """Unfinished tasks, on a loop still running (the server's; not a closed loop an earlier
    test left behind), of a websocket consumer: channels' dispatch loop, the consumer itself,
    or the channel layer's receive it waits on."""
    running = []
    for obj in gc.get_objects():
        # type(), not isinstance(): a dead weak proxy among the objects raises on the latter.
        if not issubclass(type(obj), asyncio.Task) or obj.done():
            continue
        if not obj.get_loop().is_running():
            continue
        coro = repr(obj.get_coro())
        if "await_many_dispatch" in coro or "Consumer" in coro or "ChannelLayer.receive" in coro:
            running.append(obj)
    return running


def _wait_for(predicate, seconds: float = 10.0):
    deadline = time.monotonic() + seconds
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.1)


async def _round(url: str, tokens: list[str], *, abort: bool) -> tuple[list[str], int]:
    """Every token's socket connects and gets its hello; then each closes (a close frame) or,
    with `abort`, drops its TCP connection without one. Returns the hellos' types and how many
    consumer tasks ran while all sockets were open (the check below must see them)."""

    async def opened(token: str):
        ws = await websockets.connect(
            url, additional_headers={"Authorization": f"Bearer {token}"}, open_timeout=10
        )
        return ws, json.loads(await asyncio.wait_for(ws.recv(), 10))["type"]

    sockets = await asyncio.gather(*(opened(t) for t in tokens))
    seen = len(_consumers_running())
    for ws, _ in sockets:
        if abort:
            ws.transport.abort()
        else:
            await ws.close()
    return [hello for _, hello in sockets], seen


def _redis_clients() -> int:
    from config.core.redis import redis_client

    return len(redis_client().client_list())


@pytest.mark.parametrize("abort", [False, True], ids=["closed", "dropped"])
def test_sockets_that_go_leave_no_consumer_and_no_growing_pool(uvicorn_server, abort):
    url = uvicorn_server.replace("http://", "ws://") + "/ws/"
    tokens = [token_for(UserFactory(username=f"ws{abort:d}x{i}")) for i in range(CLIENTS)]
    hellos, seen = asyncio.run(_round(url, tokens, abort=abort))
    assert hellos == ["hello"] * CLIENTS
    assert seen >= CLIENTS  # one consumer (at least one task) per open socket
    # Each consumer ends once its client has gone.
    assert _wait_for(lambda: not _consumers_running()), _consumers_running()
    after_first = _redis_clients()
    for _ in range(2):
        assert asyncio.run(_round(url, tokens, abort=abort))[0] == ["hello"] * CLIENTS
        assert _wait_for(lambda: not _consumers_running()), _consumers_running()
    # The channel layer's connections are reused, not added per client that came and went
    # (other clients of this Redis may come and go meanwhile: a few, never a round's worth).
    assert _redis_clients() - after_first < CLIENTS


def test_events_still_arrive_after_sockets_went(uvicorn_server):
    """The cancelled receives leave the layer working: a socket opened afterwards gets its
    user's notification."""
    from django.db import transaction

    from accounts.services import notification_create

    url = uvicorn_server.replace("http://", "ws://") + "/ws/"
    users = [UserFactory(username=f"wsev{i}") for i in range(CLIENTS)]
    tokens = [token_for(u) for u in users]
    asyncio.run(_round(url, tokens, abort=False))
    actor = UserFactory(username="wsactor")

    def notify():
        with transaction.atomic():
            notification_create(recipient=users[0], kind="follow", actor=actor)

    async def listen() -> dict:
        ws = await websockets.connect(
            url, additional_headers={"Authorization": f"Bearer {tokens[0]}"}, open_timeout=10
        )
        assert json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] == "hello"
        await asyncio.to_thread(notify)
        event = json.loads(await asyncio.wait_for(ws.recv(), 10))
        await ws.close()
        return event

    event = asyncio.run(listen())
    assert event["type"] == "notification"
    assert event["notification"]["actor"]["username"] == "wsactor"
    assert _wait_for(lambda: not _consumers_running()), _consumers_running()

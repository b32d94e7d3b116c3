"""The websocket over the real ASGI app and the real Redis channel layer."""

import asyncio

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.db import transaction

from accounts.services import notification_create
from config.asgi import application
from tests.factories import UserFactory, token_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]


async def connect(headers=None, path="/ws/"):
    communicator = WebsocketCommunicator(application, path, headers=headers or [])
    connected, code = await communicator.connect(timeout=5)
    return communicator, connected, code


def bearer(token):
    return [(b"authorization", f"Bearer {token}".encode())]


@sync_to_async
def make_user_and_token(username):
    user = UserFactory(username=username)
    return user, token_for(user)


async def test_bearer_connects_and_receives_own_notifications_only():
    alice, alice_token = await make_user_and_token("alice")
    bob, bob_token = await make_user_and_token("bob")
    ws_alice, ok_a, _ = await connect(bearer(alice_token))
    ws_bob, ok_b, _ = await connect(bearer(bob_token))
    assert ok_a and ok_b
    assert (await ws_alice.receive_json_from(timeout=5))["type"] == "hello"
    assert (await ws_bob.receive_json_from(timeout=5))["type"] == "hello"

    @sync_to_async
    def notify():
        with transaction.atomic():
            notification_create(recipient=alice, kind="follow", actor=bob)

    await notify()
    event = await ws_alice.receive_json_from(timeout=5)
    assert event["type"] == "notification"
    assert event["notification"]["kind"] == "follow"
    assert event["notification"]["actor"]["username"] == "bob"
    assert await ws_bob.receive_nothing(timeout=0.5)
    await ws_alice.disconnect()
    await ws_bob.disconnect()


async def test_no_credentials_is_closed():
    ws, connected, code = await connect()
    assert not connected and code == 4401


async def test_bad_token_is_closed():
    ws, connected, code = await connect(bearer("riff_nope"))
    assert not connected and code == 4401


async def test_foreign_origin_is_refused():
    _, token = await make_user_and_token("alice")
    ws, connected, _ = await connect(bearer(token) + [(b"origin", b"https://evil.example")])
    assert not connected


async def test_ticket_is_single_use():
    from rest_framework.test import APIClient

    alice, token = await make_user_and_token("alice")

    @sync_to_async
    def ticket():
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
        response = client.post("/api/v1/realtime/ticket")
        assert response.status_code == 201
        return response.json()["ticket"]

    value = await ticket()
    ws, connected, _ = await connect(path=f"/ws/?ticket={value}")
    assert connected
    assert (await ws.receive_json_from(timeout=5))["user_id"] == str(alice.pk)
    await ws.disconnect()
    again, connected_again, code = await connect(path=f"/ws/?ticket={value}")
    assert not connected_again and code == 4401
    await asyncio.sleep(0)


async def test_an_idle_websocket_still_gets_events():
    """Nothing for longer than redis-py's 5 s socket timeout, then an event: it arrives (the
    channel layer's blocking pop once outlasted the socket and the connection dropped)."""
    from redis.asyncio.connection import Connection

    from config.core.redis import ChannelLayer

    assert ChannelLayer.brpop_timeout < Connection().socket_timeout
    alice, token = await make_user_and_token("alice")
    bob = await sync_to_async(UserFactory)(username="bob")
    ws, ok, _ = await connect(bearer(token))
    assert ok and (await ws.receive_json_from(timeout=5))["type"] == "hello"
    assert await ws.receive_nothing(timeout=7, interval=0.5)

    @sync_to_async
    def notify():
        with transaction.atomic():
            notification_create(recipient=alice, kind="follow", actor=bob)

    await notify()
    assert (await ws.receive_json_from(timeout=5))["type"] == "notification"
    await ws.disconnect()

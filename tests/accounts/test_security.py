"""Auth edges (issue #27, findings 8-10): who the client is behind proxies, the login throttles,
logout reaching open websockets, no-store on private answers, and a closed /metrics."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.db import transaction
from django.test import Client, RequestFactory
from rest_framework.test import APIClient
from rest_framework.throttling import SimpleRateThrottle

from accounts.models import AuthToken, Invite, User
from accounts.services import invite_mint, notification_create
from accounts.tokens import hash_token, tokens_revoke
from config.asgi import application
from config.core.clientip import client_ip
from tests.factories import PASSWORD, UserFactory, token_for
from tests.helpers import assert_error


@pytest.fixture
def rates(monkeypatch):
    """Sets throttle rates for one test. DRF reads the rates into a class attribute when the
    module is imported, so the attribute is what has to change."""

    def set_rates(**overrides):
        monkeypatch.setattr(
            SimpleRateThrottle, "THROTTLE_RATES", {**SimpleRateThrottle.THROTTLE_RATES, **overrides}
        )

    return set_rates


WRONG = "wrong password"


def login(client, username, password=WRONG, **extra):
    return client.post(
        "/api/v1/auth/login", {"username": username, "password": password}, format="json", **extra
    )


# --- who the client is --------------------------------------------------------------------------


def _ip(remote_addr, xff=None):
    extra = {"REMOTE_ADDR": remote_addr}
    if xff is not None:
        extra["HTTP_X_FORWARDED_FOR"] = xff
    return client_ip(RequestFactory().get("/", **extra))


def test_forwarded_for_is_ignored_without_trusted_proxies(settings):
    settings.RIFF_TRUSTED_PROXIES = []
    assert _ip("198.51.100.7", "203.0.113.5") == "198.51.100.7"


def test_forwarded_for_is_read_from_the_right_past_trusted_proxies(settings):
    settings.RIFF_TRUSTED_PROXIES = ["10.0.0.0/8", "127.0.0.1"]
    assert _ip("127.0.0.1", "203.0.113.5") == "203.0.113.5"
    # Two proxies of ours: both skipped.
    assert _ip("127.0.0.1", "203.0.113.5, 10.1.2.3") == "203.0.113.5"
    # Whatever the client wrote to the left of the address our proxy saw is never reached.
    assert _ip("127.0.0.1", "1.1.1.1, 10.9.9.9, 203.0.113.5") == "203.0.113.5"
    # A peer that is not ours cannot forward at all.
    assert _ip("198.51.100.7", "203.0.113.5") == "198.51.100.7"
    # Garbage from the client side stops the walk at the last address a proxy of ours wrote.
    assert _ip("127.0.0.1", "not-an-ip, 10.0.0.1") == "10.0.0.1"
    assert _ip("127.0.0.1", "") == "127.0.0.1"
    assert _ip("::ffff:127.0.0.1", "2001:db8::1") == "2001:db8::1"


def test_rotating_forwarded_for_does_not_escape_the_login_throttle(db, anon, user, rates):
    rates(login="3/min")
    for i in range(3):
        response = login(anon, f"ghost{i}", HTTP_X_FORWARDED_FOR=f"203.0.113.{i}")
        assert_error(response, 400, "invalid_credentials")
    # A fresh address in the header and the right password: still the same client.
    response = login(anon, "alice", PASSWORD, HTTP_X_FORWARDED_FOR="203.0.113.99")
    assert_error(response, 429, "rate_limited")
    assert int(response["Retry-After"]) >= 1
    assert not AuthToken.objects.filter(user=user).exists()


def test_rotating_forwarded_for_does_not_escape_the_register_throttle(db, anon, rates):
    rates(register="3/min")
    invites = [invite_mint(created_by=None) for _ in range(4)]

    def register(i):
        body = {
            "username": f"newbie{i}",
            "email": f"n{i}@example.com",
            "password": "a long enough secret",
            "invite_code": invites[i].code,
            "birth_date": "1998-04-02",
        }
        return anon.post(
            "/api/v1/auth/register", body, format="json", HTTP_X_FORWARDED_FOR=f"198.51.100.{i}"
        )

    for i in range(3):
        assert register(i).status_code == 201
    response = register(3)
    assert_error(response, 429, "rate_limited")
    assert int(response["Retry-After"]) >= 1
    assert not User.objects.filter(username="newbie3").exists()
    assert Invite.objects.get(pk=invites[3].pk).used_by is None


def test_behind_a_trusted_proxy_each_forwarded_client_has_its_own_bucket(db, anon, rates, settings):
    settings.RIFF_TRUSTED_PROXIES = ["127.0.0.1"]  # the test client's peer address
    rates(login="2/min")
    first = {"HTTP_X_FORWARDED_FOR": "203.0.113.5"}
    for i in range(2):
        assert_error(login(anon, f"ghost{i}", **first), 400, "invalid_credentials")
    assert_error(login(anon, "ghost2", **first), 429, "rate_limited")
    # Spoofing an address in front of the one the proxy appended changes nothing.
    spoofed = {"HTTP_X_FORWARDED_FOR": "192.0.2.44, 203.0.113.5"}
    assert_error(login(anon, "ghost3", **spoofed), 429, "rate_limited")
    # Another client behind the same proxy is not affected.
    second = {"HTTP_X_FORWARDED_FOR": "203.0.113.6"}
    assert_error(login(anon, "ghost4", **second), 400, "invalid_credentials")


def test_num_proxies_is_refused_at_start_up():
    code = "import django; django.setup()"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "RIFF_DEV": "1",
        "NUM_PROXIES": "1",
    }
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode != 0
    assert "RIFF_TRUSTED_PROXIES" in out.stderr


# --- admin login throttle -----------------------------------------------------------------------


@pytest.fixture
def staff(make_user):
    return make_user(username="boss", is_staff=True, is_superuser=True)


def admin_login(client, username, password, **extra):
    return client.post(
        "/admin/login/?next=/admin/",
        {"username": username, "password": password, "next": "/admin/"},
        **extra,
    )


def test_admin_login_is_throttled_and_the_right_password_waits(staff, rates):
    rates(admin_login="10/min")
    client = Client()
    for _ in range(10):
        response = admin_login(client, "boss", "wrong password")
        assert response.status_code == 200  # the form again, with its error
    response = admin_login(client, "boss", "wrong password")
    assert response.status_code == 429
    assert int(response["Retry-After"]) >= 1
    response = admin_login(client, "boss", PASSWORD)
    assert response.status_code == 429
    assert "_auth_user_id" not in client.session
    assert client.get("/admin/").status_code == 302  # still signed out


def test_admin_login_is_throttled_per_account_across_addresses(staff, rates):
    rates(admin_login="3/min")
    for i in range(3):
        client = Client(REMOTE_ADDR=f"198.51.100.{i}")
        assert admin_login(client, "BOSS", "wrong password").status_code == 200
    response = admin_login(Client(REMOTE_ADDR="198.51.100.50"), "boss", PASSWORD)
    assert response.status_code == 429


def test_admin_login_is_throttled_per_address_across_accounts(staff, rates):
    rates(admin_login="3/min")
    client = Client(REMOTE_ADDR="198.51.100.9")
    for i in range(3):
        assert admin_login(client, f"nobody{i}", "wrong password").status_code == 200
    assert admin_login(client, "boss", PASSWORD).status_code == 429
    # Someone else may still sign in.
    other = Client(REMOTE_ADDR="198.51.100.10")
    assert admin_login(other, "boss", PASSWORD).status_code == 302


# --- no-store -----------------------------------------------------------------------------------


def test_token_and_profile_answers_are_not_stored(db, anon, user):
    invite = invite_mint(created_by=None)
    response = anon.post(
        "/api/v1/auth/register",
        {
            "username": "newbie",
            "email": "n@example.com",
            "password": "a long enough secret",
            "invite_code": invite.code,
            "birth_date": "1998-04-02",
        },
        format="json",
    )
    assert response.status_code == 201 and response["Cache-Control"] == "no-store"
    response = login(anon, "alice", PASSWORD)
    assert response.status_code == 200 and response["Cache-Control"] == "no-store"
    anon.credentials(HTTP_AUTHORIZATION=f"Bearer {response.json()['token']}")
    response = anon.get("/api/v1/me")
    assert response.status_code == 200 and response["Cache-Control"] == "no-store"
    response = anon.patch("/api/v1/me", {"bio": "hi"}, format="json")
    assert response.status_code == 200 and response["Cache-Control"] == "no-store"
    # Refusals too: an error body can carry private detail.
    assert anon.get("/api/v1/users/nobody-here")["Cache-Control"] == "no-store"


def test_views_that_set_their_own_cache_control_keep_it(api, user, make_video_row):
    video = make_video_row(user)
    response = api.get(f"/api/v1/videos/{video.pk}/content?variant=poster")
    assert response.status_code == 200
    assert response["Cache-Control"].startswith("private")
    assert "no-store" not in response["Cache-Control"]


# --- /metrics -----------------------------------------------------------------------------------


def test_metrics_refuses_clients_outside_the_allow_list(db, settings):
    settings.RIFF_METRICS_TOKEN = None
    response = Client(REMOTE_ADDR="203.0.113.9").get("/metrics")
    assert_error(response, 403, "permission_denied")
    assert b"riff_http_requests_total" not in response.content


def test_metrics_answers_loopback_and_the_token(db, settings):
    settings.RIFF_METRICS_TOKEN = "scrape-secret"
    assert Client().get("/metrics").status_code == 200  # 127.0.0.1, the default allow-list
    outside = Client(REMOTE_ADDR="203.0.113.9")
    response = outside.get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-secret")
    assert response.status_code == 200 and b"riff_http_requests_total" in response.content
    response = outside.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong")
    assert_error(response, 403, "permission_denied")


def test_metrics_through_an_unknown_proxy_is_refused(db, settings):
    # A proxy on the same box makes every caller look like loopback; its header gives it away.
    settings.RIFF_TRUSTED_PROXIES = []
    response = Client().get("/metrics", HTTP_X_FORWARDED_FOR="203.0.113.9")
    assert_error(response, 403, "permission_denied")
    # Through a proxy we trust, the forwarded client is what the allow-list judges.
    settings.RIFF_TRUSTED_PROXIES = ["127.0.0.1"]
    response = Client().get("/metrics", HTTP_X_FORWARDED_FOR="203.0.113.9")
    assert_error(response, 403, "permission_denied")
    settings.RIFF_METRICS_ALLOWED_IPS = ["203.0.113.0/24"]
    assert Client().get("/metrics", HTTP_X_FORWARDED_FOR="203.0.113.9").status_code == 200


# --- logout reaches websockets ------------------------------------------------------------------


async def assert_closed_as_revoked(communicator):
    assert await communicator.receive_output(timeout=5) == {"type": "websocket.close", "code": 4001}
    # What the server does next when the client acknowledges the close.
    await communicator.disconnect()


async def ws_connect(headers=None, path="/ws/"):
    communicator = WebsocketCommunicator(application, path, headers=headers or [])
    connected, code = await communicator.connect(timeout=5)
    if connected:
        assert (await communicator.receive_json_from(timeout=5))["type"] == "hello"
    return communicator, connected, code


def bearer(token):
    return [(b"authorization", f"Bearer {token}".encode())]


@sync_to_async
def make_user_and_tokens(username, count=1):
    user = UserFactory(username=username)
    return user, [token_for(user) for _ in range(count)]


@sync_to_async
def post(token, path):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client.post(path)


@sync_to_async
def delete(token, path):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client.delete(path)


@sync_to_async
def notify(recipient, actor):
    with transaction.atomic():
        notification_create(recipient=recipient, kind="follow", actor=actor)


async def ticket_for(token):
    response = await post(token, "/api/v1/realtime/ticket")
    assert response.status_code == 201
    return response.json()["ticket"]


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_logout_closes_the_sockets_of_that_token_only():
    alice, (phone, laptop) = await make_user_and_tokens("alice", 2)
    bob, _ = await make_user_and_tokens("bob")
    ws_phone, ok_phone, _ = await ws_connect(bearer(phone))
    # A browser socket opened through a ticket minted with the phone's token.
    ws_ticket, ok_ticket, _ = await ws_connect(path=f"/ws/?ticket={await ticket_for(phone)}")
    ws_laptop, ok_laptop, _ = await ws_connect(bearer(laptop))
    assert ok_phone and ok_ticket and ok_laptop

    assert (await post(phone, "/api/v1/auth/logout")).status_code == 204
    await assert_closed_as_revoked(ws_phone)
    await assert_closed_as_revoked(ws_ticket)
    # The laptop's socket is another session: it stays and still hears events.
    await notify(alice, bob)
    assert (await ws_laptop.receive_json_from(timeout=5))["type"] == "notification"
    await ws_laptop.disconnect()


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_logout_all_closes_every_socket_and_voids_tickets():
    alice, (phone, laptop) = await make_user_and_tokens("alice", 2)
    bob, _ = await make_user_and_tokens("bob")
    ws_phone, _, _ = await ws_connect(bearer(phone))
    ws_laptop, _, _ = await ws_connect(bearer(laptop))
    unused_ticket = await ticket_for(laptop)

    assert (await post(phone, "/api/v1/auth/logout-all")).status_code == 204
    await assert_closed_as_revoked(ws_phone)
    await assert_closed_as_revoked(ws_laptop)
    await notify(alice, bob)  # nobody is listening any more; nothing must break
    # A ticket minted before logout-all no longer opens a socket.
    _, connected, code = await ws_connect(path=f"/ws/?ticket={unused_ticket}")
    assert not connected and code == 4401


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_ticket_of_a_logged_out_token_is_refused():
    _, (phone, laptop) = await make_user_and_tokens("alice", 2)
    ticket = await ticket_for(phone)
    assert (await post(phone, "/api/v1/auth/logout")).status_code == 204
    _, connected, code = await ws_connect(path=f"/ws/?ticket={ticket}")
    assert not connected and code == 4401
    # Tickets of the user's other, live token still work.
    ws, connected, _ = await ws_connect(path=f"/ws/?ticket={await ticket_for(laptop)}")
    assert connected
    await ws.disconnect()


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_staff_revocation_and_account_deletion_close_sockets():
    alice, (phone, laptop) = await make_user_and_tokens("alice", 2)
    ws_phone, _, _ = await ws_connect(bearer(phone))
    ws_laptop, _, _ = await ws_connect(bearer(laptop))

    @sync_to_async
    def staff_revokes_phone():
        # What the admin's "Revoke selected tokens" action calls.
        tokens_revoke(tokens=AuthToken.objects.filter(key_hash=hash_token(phone)))

    await staff_revokes_phone()
    await assert_closed_as_revoked(ws_phone)
    assert await ws_laptop.receive_nothing(timeout=0.3)

    assert (await delete(laptop, "/api/v1/me")).status_code == 204
    await assert_closed_as_revoked(ws_laptop)


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_staff_setting_a_password_or_deactivating_closes_sockets():
    alice, (phone,) = await make_user_and_tokens("alice")
    ws_phone, _, _ = await ws_connect(bearer(phone))

    @sync_to_async
    def staff_client():
        boss = UserFactory(username="boss", is_staff=True, is_superuser=True)
        client = Client()
        client.force_login(boss)
        return client

    @sync_to_async
    def set_password(client):
        return client.post(
            f"/admin/accounts/user/{alice.pk}/password/",
            {
                "usable_password": "true",
                "password1": "N3w-long-secret!",
                "password2": "N3w-long-secret!",
            },
        )

    client = await staff_client()
    assert (await set_password(client)).status_code == 302
    await assert_closed_as_revoked(ws_phone)
    assert not await sync_to_async(AuthToken.objects.filter(user=alice, revoked_at=None).exists)()

    # Deactivation: a new session first, then staff unticks "active".
    laptop = await sync_to_async(token_for)(alice)
    ws_laptop, connected, _ = await ws_connect(bearer(laptop))
    assert connected

    @sync_to_async
    def deactivate(client):
        # The admin's change form, submitted with "active" unticked (unticked boxes are absent).
        return client.post(
            f"/admin/accounts/user/{alice.pk}/change/",
            {
                "username": "alice",
                "email": "alice@example.com",
                "birth_date": "1995-06-15",
                "display_name": "",
                "bio": "",
                "avatar_large": "",
                "avatar_small": "",
            },
        )

    assert (await deactivate(client)).status_code == 302
    assert not (await sync_to_async(User.objects.get)(pk=alice.pk)).is_active
    await assert_closed_as_revoked(ws_laptop)

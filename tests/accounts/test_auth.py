import subprocess
import sys
import threading
from datetime import date, timedelta

import pytest
from django.db import connection
from django.utils import timezone

from accounts.models import AuthToken, Follow, Invite, User
from accounts.services import invite_mint
from tests.factories import PASSWORD
from tests.helpers import assert_error

pytestmark = pytest.mark.django_db


def register(anon, invite, **overrides):
    body = {
        "username": "newbie",
        "email": "newbie@example.com",
        "password": "a long enough secret",
        "invite_code": invite.code,
        "birth_date": "1998-04-02",
        **overrides,
    }
    return anon.post("/api/v1/auth/register", body, format="json")


@pytest.fixture
def invite(user):
    return invite_mint(created_by=user)


def test_register_consumes_invite_and_follows_inviter(anon, user, invite):
    response = register(anon, invite)
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["user"]["username"] == "newbie"
    assert body["user"]["is_teen"] is False
    assert body["token"].startswith("riff_")
    newbie = User.objects.get(username="newbie")
    invite.refresh_from_db()
    assert invite.used_by == newbie and invite.used_at is not None
    assert Follow.objects.filter(follower=newbie, followee=user).exists()
    assert Follow.objects.filter(follower=user, followee=newbie).exists()
    # The token works and only its hash is stored.
    anon.credentials(HTTP_AUTHORIZATION=f"Bearer {body['token']}")
    assert anon.get("/api/v1/me").json()["username"] == "newbie"
    assert not AuthToken.objects.filter(key_hash=body["token"]).exists()


def test_register_accepts_invite_code_in_any_case_and_spacing(anon, invite):
    response = register(anon, invite, invite_code=" " + invite.code.lower() + " ")
    assert response.status_code == 201


@pytest.mark.parametrize("code", ["NOPE-NOPE-NOPE", "", "x" * 64])
def test_register_with_unknown_invite_is_refused(anon, code, invite):
    response = register(anon, invite, invite_code=code)
    assert response.status_code == 400
    assert response.json()["error"]["code"] in {"invalid_invite", "invalid"}
    assert not User.objects.filter(username="newbie").exists()


def test_used_invite_is_refused(anon, invite):
    assert register(anon, invite).status_code == 201
    response = register(anon, invite, username="second", email="s@example.com")
    assert_error(response, 400, "invalid_invite", "invite_code")
    assert not User.objects.filter(username="second").exists()


def test_under_13_is_refused_and_invite_kept(anon, invite):
    today = timezone.localdate()
    birth = date(today.year - 12, today.month, 1)
    response = register(anon, invite, birth_date=birth.isoformat())
    assert_error(response, 400, "too_young", "birth_date")
    invite.refresh_from_db()
    assert invite.used_by is None
    assert User.objects.count() == 1  # only the inviter


def test_13_to_17_is_flagged_teen(anon, invite, teen_birth_date):
    response = register(anon, invite, birth_date=teen_birth_date.isoformat())
    assert response.status_code == 201
    assert response.json()["user"]["is_teen"] is True


def test_age_boundaries():
    from accounts.models import age_on

    assert age_on(date(2008, 11, 24), date(2026, 11, 24)) == 18
    assert age_on(date(2008, 11, 25), date(2026, 11, 24)) == 17
    assert age_on(date(2008, 2, 29), date(2026, 2, 28)) == 17
    assert age_on(date(2008, 2, 29), date(2026, 3, 1)) == 18


@pytest.mark.parametrize(
    "username,code",
    [
        ("admin", "invalid"),
        ("Support", "invalid"),
        ("ab", "invalid"),
        ("has space", "invalid"),
        ("_edge", "invalid"),
        ("ALICE", "username_taken"),
        ("ａｌｉｃｅ", "username_taken"),  # full width
        ("аlice", "username_taken"),  # Cyrillic а
        ("al1ce", "username_taken"),  # digit look-alike
        ("al\u202ece", "invalid"),  # bidi override
    ],
)
def test_username_rules(anon, invite, username, code):
    response = register(anon, invite, username=username)
    assert_error(response, 400, code, "username")
    assert User.objects.count() == 1


def test_weak_password_is_refused(anon, invite):
    assert_error(register(anon, invite, password="12345678"), 400, "invalid", "password")


def test_missing_fields_are_listed(anon):
    error = assert_error(anon.post("/api/v1/auth/register", {}, format="json"), 400, "invalid")
    assert set(error["fields"]) == {"username", "email", "password", "invite_code", "birth_date"}


@pytest.mark.django_db(transaction=True)
def test_one_invite_used_concurrently_yields_one_user(anon):
    invite = invite_mint(created_by=None)
    results = []

    def attempt(i):
        from rest_framework.test import APIClient

        try:
            response = register(
                APIClient(), invite, username=f"racer{i}", email=f"r{i}@example.com"
            )
            results.append(response.status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [201] + [400] * 5
    assert User.objects.filter(username__startswith="racer").count() == 1


def test_login_logout(anon, user):
    response = anon.post(
        "/api/v1/auth/login", {"username": "ALICE", "password": PASSWORD}, format="json"
    )
    assert response.status_code == 200
    token = response.json()["token"]
    anon.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    assert anon.get("/api/v1/me").status_code == 200
    assert anon.post("/api/v1/auth/logout").status_code == 204
    assert_error(anon.get("/api/v1/me"), 401, "not_authenticated")


def test_logout_all_revokes_every_token(client_of, user):
    a, b = client_of(user), client_of(user)
    assert a.post("/api/v1/auth/logout-all").status_code == 204
    assert_error(b.get("/api/v1/me"), 401, "not_authenticated")
    assert AuthToken.objects.filter(user=user, revoked_at__isnull=True).count() == 0


def test_wrong_password(anon, user):
    response = anon.post(
        "/api/v1/auth/login", {"username": "alice", "password": "nope"}, format="json"
    )
    assert_error(response, 400, "invalid_credentials")


def test_login_is_throttled_per_account(anon, user):
    for _ in range(10):
        anon.post("/api/v1/auth/login", {"username": "alice", "password": "nope"}, format="json")
    response = anon.post(
        "/api/v1/auth/login", {"username": "alice", "password": PASSWORD}, format="json"
    )
    assert_error(response, 429, "rate_limited")
    assert int(response["Retry-After"]) >= 1


def test_expired_and_garbage_tokens_are_refused(api, user):
    AuthToken.objects.filter(user=user).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert_error(api.get("/api/v1/me"), 401, "not_authenticated")
    api.credentials(HTTP_AUTHORIZATION="Bearer riff_" + "x" * 40)
    assert_error(api.get("/api/v1/me"), 401, "not_authenticated")
    api.credentials(HTTP_AUTHORIZATION="Bearer")
    assert_error(api.get("/api/v1/me"), 401, "not_authenticated")


def test_anonymous_is_refused(anon):
    response = anon.get("/api/v1/me")
    assert_error(response, 401, "not_authenticated")
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_production_hasher_is_argon2():
    code = "import django,os;django.setup();from django.conf import settings;print(settings.PASSWORD_HASHERS[0])"
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={
            **__import__("os").environ,
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "RIFF_TESTING": "0",
            "RIFF_DEV": "1",
        },
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "django.contrib.auth.hashers.Argon2PasswordHasher"


def test_invites_mint_and_limit(api, user, settings):
    settings.RIFF_INVITES_PER_USER = 2
    assert api.post("/api/v1/me/invites").status_code == 201
    assert api.post("/api/v1/me/invites").status_code == 201
    assert_error(api.post("/api/v1/me/invites"), 403, "invite_limit_reached")
    assert Invite.objects.filter(created_by=user).count() == 2
    listing = api.get("/api/v1/me/invites").json()
    assert len(listing["results"]) == 2 and listing["next"] is None
    assert all(row["used_by"] is None for row in listing["results"])


def test_other_users_invites_are_not_listed(api, other):
    invite_mint(created_by=other)
    assert api.get("/api/v1/me/invites").json()["results"] == []


def test_mint_invites_command(db, capsys):
    from django.core.management import call_command

    call_command("mint_invites", "3")
    codes = capsys.readouterr().out.split()
    assert len(codes) == 3
    assert Invite.objects.filter(code__in=codes, created_by__isnull=True).count() == 3

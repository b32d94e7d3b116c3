"""API keys for the Videos API (issue #32): `/api/v1/me/api-keys`, the lookup, the /v1/
authentication class and the per-key throttle, on the real PostgreSQL and Redis."""

from __future__ import annotations

import hashlib
import re
import uuid
from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.test import APIClient, APIRequestFactory
from rest_framework.views import APIView

from accounts.apikeys import api_key_create, api_key_lookup, api_key_revoke
from accounts.authentication import ApiKeyAuthentication, BearerTokenAuthentication
from accounts.models import ApiKey
from accounts.throttles import ApiKeyThrottle
from config.core.errors import NotFound
from tests.conftest import client_for
from tests.factories import token_for
from tests.helpers import assert_error

pytestmark = pytest.mark.django_db

URL = "/api/v1/me/api-keys"
KEY_SHAPE = re.compile(r"rk_[A-Za-z0-9_-]{43}")


def _create(api, name: str = "ci bot") -> dict:
    response = api.post(URL, {"name": name}, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def _snapshot() -> list[tuple]:
    return list(
        ApiKey.objects.order_by("pk").values_list("pk", "user_id", "name", "revoked_at", "key_hash")
    )


# --- create -------------------------------------------------------------------------------------


def test_create_shows_the_key_once_and_stores_only_its_hash(api, user):
    body = _create(api, "render farm")
    assert set(body) == {"id", "name", "prefix", "key", "created_at"}
    raw = body["key"]
    assert KEY_SHAPE.fullmatch(raw)
    assert body["prefix"] == raw[:12] and body["name"] == "render farm"
    row = ApiKey.objects.get(pk=body["id"])
    assert row.user_id == user.pk and row.prefix == raw[:12]
    assert row.key_hash == hashlib.sha256(raw.encode()).hexdigest()
    assert row.last_used_at is None and row.revoked_at is None
    # The secret is in no column (only its first 12 characters, as the prefix).
    stored = [str(v) for v in ApiKey.objects.filter(pk=row.pk).values().get().values()]
    assert not any(raw in value for value in stored)
    assert not any(raw[12:24] in value for value in stored)
    # And never shown again: not in the list.
    listed = api.get(URL).json()["results"]
    assert listed == [
        {
            "id": body["id"],
            "name": "render farm",
            "prefix": raw[:12],
            "created_at": body["created_at"],
            "last_used_at": None,
        }
    ]


def test_two_keys_differ(api):
    first, second = _create(api), _create(api)
    assert first["key"] != second["key"] and first["prefix"] != second["prefix"]


def test_a_unicode_name_is_kept_and_control_characters_go(api):
    body = _create(api, "  Résumé 🎬 bot\u202e  ")
    assert body["name"] == "Résumé 🎬 bot"
    assert ApiKey.objects.get().name == "Résumé 🎬 bot"


@pytest.mark.parametrize(
    "payload",
    [
        {},
        {"name": ""},
        {"name": "   "},
        {"name": "\u200b\u202e"},
        {"name": "x" * 101},
        {"name": 7},
        {"name": None},
        {"name": ["a"]},
        {"name": "a\x00b"},
        {"name": "ok", "scopes": ["all"]},
    ],
    ids=["missing", "empty", "blank", "invisible", "101", "int", "null", "list", "nul", "extra"],
)
def test_bad_names_are_400_and_create_nothing(api, payload):
    response = api.post(URL, payload, format="json")
    # NUL is refused by the JSON parser, before any field is read.
    nul = "\x00" in str(payload.get("name"))
    field = None if nul else "scopes" if "scopes" in payload else "name"
    assert_error(response, 400, "invalid", field)
    assert not ApiKey.objects.exists()


def test_a_name_of_100_characters_is_fine(api):
    assert _create(api, "é" * 100)["name"] == "é" * 100


def test_anonymous_callers_are_401(anon):
    assert_error(anon.get(URL), 401, "not_authenticated")
    assert_error(anon.post(URL, {"name": "x"}, format="json"), 401, "not_authenticated")
    assert_error(anon.delete(f"{URL}/{uuid.uuid4()}"), 401, "not_authenticated")
    assert not ApiKey.objects.exists()


# --- the cap ------------------------------------------------------------------------------------


def test_the_cap_counts_live_keys(api, user, settings):
    settings.RIFF_API_KEYS_PER_USER = 2
    first = _create(api)
    _create(api)
    before = _snapshot()
    error = assert_error(api.post(URL, {"name": "third"}, format="json"), 409, "too_many_api_keys")
    assert "2" in error["message"]
    assert _snapshot() == before
    # Revoking one frees a place.
    assert api.delete(f"{URL}/{first['id']}").status_code == 204
    _create(api, "third")
    assert ApiKey.objects.filter(user=user, revoked_at__isnull=True).count() == 2


def test_the_cap_is_per_user(api, other, settings):
    settings.RIFF_API_KEYS_PER_USER = 1
    _create(api)
    _create(client_for(other))
    assert ApiKey.objects.count() == 2


# --- list ---------------------------------------------------------------------------------------


def test_the_list_is_own_live_keys_newest_first_without_secrets(api, user, other):
    now = timezone.now()
    mine = []
    for i in range(3):
        key, _ = api_key_create(user=user, name=f"k{i}")
        ApiKey.objects.filter(pk=key.pk).update(created_at=now - timedelta(minutes=10 - i))
        mine.append(key)
    api_key_create(user=other, name="bob's")
    api_key_revoke(user=user, key_id=mine[1].pk)

    page = api.get(URL, {"limit": 1}).json()
    assert [k["id"] for k in page["results"]] == [str(mine[2].pk)]
    assert set(page["results"][0]) == {"id", "name", "prefix", "created_at", "last_used_at"}
    rest = api.get(page["next"]).json()
    assert [k["id"] for k in rest["results"]] == [str(mine[0].pk)] and rest["next"] is None
    assert [k["name"] for k in api.get(URL).json()["results"]] == ["k2", "k0"]


def test_the_list_shows_when_a_key_was_last_used(api, user):
    key, raw = api_key_create(user=user, name="used")
    assert api_key_lookup(raw) is not None
    listed = api.get(URL).json()["results"][0]
    key.refresh_from_db()
    assert listed["last_used_at"] is not None
    assert listed["last_used_at"].replace("Z", "+00:00") == key.last_used_at.isoformat()


# --- revoke -------------------------------------------------------------------------------------


def test_revoke_stops_the_key_and_drops_it_from_the_list(api, user):
    body = _create(api)
    assert api_key_lookup(body["key"]) is not None
    response = api.delete(f"{URL}/{body['id']}")
    assert response.status_code == 204 and not response.content
    assert api_key_lookup(body["key"]) is None
    assert api.get(URL).json() == {"results": [], "next": None}
    revoked_at = ApiKey.objects.get().revoked_at
    assert revoked_at is not None
    # Again: still 204, and the first revocation time stands.
    assert api.delete(f"{URL}/{body['id']}").status_code == 204
    assert ApiKey.objects.get().revoked_at == revoked_at


def test_another_users_key_is_404_and_keeps_working(api, other):
    key, raw = api_key_create(user=other, name="bob's")
    before = _snapshot()
    assert_error(api.delete(f"{URL}/{key.pk}"), 404, "not_found")
    assert _snapshot() == before
    assert api_key_lookup(raw) is not None
    with pytest.raises(NotFound):
        api_key_revoke(user=api.user, key_id=key.pk)


@pytest.mark.parametrize("key_id", [str(uuid.uuid4()), "not-a-uuid", "1", "' or 1=1 --", "é" * 36])
def test_unknown_or_malformed_ids_are_404(api, user, key_id):
    api_key_create(user=user, name="kept")
    before = _snapshot()
    assert_error(api.delete(f"{URL}/{key_id}"), 404, "not_found")
    assert _snapshot() == before


@pytest.mark.parametrize("key_id", ["nope", 17, None, "00000000-0000-0000-0000-00000000000g"])
def test_the_revoke_service_refuses_junk_ids_with_404(user, key_id):
    with pytest.raises(NotFound):
        api_key_revoke(user=user, key_id=key_id)


# --- lookup -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "rk_",
        "rk_" + "a" * 42,
        "rk_" + "a" * 44,
        "rk_" + "!" * 43,
        "rk_" + "é" * 43,
        "rk_" + "a" * 42 + "\n",
        "RK_" + "a" * 43,
        "riff_" + "a" * 43,
        "rk_" + "a" * 10_000,
        "rk_" + "a" * 42 + "\x00",
        None,
        b"rk_" + b"a" * 43,
        42,
    ],
)
def test_lookup_refuses_garbage_without_a_query(raw, django_assert_num_queries):
    with django_assert_num_queries(0):
        assert api_key_lookup(raw) is None


def test_lookup_of_an_unknown_key_is_none(django_assert_num_queries):
    with django_assert_num_queries(1):
        assert api_key_lookup("rk_" + "a" * 43) is None


def test_lookup_loads_the_user_in_one_query(user, django_assert_num_queries):
    key, raw = api_key_create(user=user, name="k")
    api_key_lookup(raw)  # touches last_used_at once
    with django_assert_num_queries(1):
        found = api_key_lookup(raw)
        assert found.pk == key.pk and found.user.username == user.username


def test_lookup_refuses_revoked_keys_and_inactive_users(user, other):
    _, revoked = api_key_create(user=user, name="old")
    api_key_revoke(user=user, key_id=ApiKey.objects.get().pk)
    _, banned = api_key_create(user=other, name="bob's")
    other.is_active = False
    other.save(update_fields=["is_active"])
    assert api_key_lookup(revoked) is None
    assert api_key_lookup(banned) is None


def test_last_used_is_written_at_most_every_touch_interval(user, settings):
    settings.RIFF_TOKEN_TOUCH_SECONDS = 600
    key, raw = api_key_create(user=user, name="k")
    start = timezone.now()
    api_key_lookup(raw, now=start)
    key.refresh_from_db()
    assert key.last_used_at == start
    api_key_lookup(raw, now=start + timedelta(seconds=599))
    key.refresh_from_db()
    assert key.last_used_at == start
    later = start + timedelta(seconds=601)
    api_key_lookup(raw, now=later)
    key.refresh_from_db()
    assert key.last_used_at == later


# --- the /v1/ authentication class ----------------------------------------------------------------


class WhoAmI(APIView):
    authentication_classes = [ApiKeyAuthentication]
    permission_classes = [IsAuthenticated]
    throttle_classes: list = []

    def get(self, request):
        return Response({"user": request.user.username, "key": str(request.auth.pk)})


def _call(view, authorization: str | None = None):
    headers = {"HTTP_AUTHORIZATION": authorization} if authorization is not None else {}
    return view.as_view()(APIRequestFactory().get("/v1/whoami", **headers))


def test_a_key_authenticates_as_its_user(user):
    key, raw = api_key_create(user=user, name="k")
    response = _call(WhoAmI, f"Bearer {raw}")
    assert response.status_code == 200
    assert response.data == {"user": user.username, "key": str(key.pk)}
    # The scheme is case-insensitive, as for session tokens.
    assert _call(WhoAmI, f"bearer {raw}").status_code == 200


def test_no_header_is_left_to_the_permissions():
    request = APIRequestFactory().get("/v1/whoami")
    assert ApiKeyAuthentication().authenticate(request) is None
    request = APIRequestFactory().get("/v1/whoami", HTTP_AUTHORIZATION="Basic YTpi")
    assert ApiKeyAuthentication().authenticate(request) is None
    response = _call(WhoAmI)
    assert response.status_code == 401
    assert response.data["error"]["code"] == "not_authenticated"


@pytest.mark.parametrize(
    "make_header",
    [
        lambda user, raw, token: f"Bearer {token}",  # a session token is not a key
        lambda user, raw, token: f"Bearer {raw[:-1]}",
        lambda user, raw, token: f"Bearer {raw}x",
        lambda user, raw, token: "Bearer rk_" + "z" * 43,
        lambda user, raw, token: "Bearer",
        lambda user, raw, token: f"Bearer {raw} {raw}",
        lambda user, raw, token: "Bearer " + "é" * 10,
    ],
    ids=["session token", "short", "long", "unknown", "empty", "two", "non-ascii"],
)
def test_anything_but_a_live_key_is_401(user, make_header):
    _, raw = api_key_create(user=user, name="k")
    response = _call(WhoAmI, make_header(user, raw, token_for(user)))
    assert response.status_code == 401, response.data
    assert response.data["error"]["code"] == "not_authenticated"
    assert response["WWW-Authenticate"] == 'Bearer realm="videos-api"'


def test_a_revoked_key_is_401_at_once(user):
    key, raw = api_key_create(user=user, name="k")
    assert _call(WhoAmI, f"Bearer {raw}").status_code == 200
    api_key_revoke(user=user, key_id=key.pk)
    assert _call(WhoAmI, f"Bearer {raw}").status_code == 401


# --- keys work only on /v1/ -----------------------------------------------------------------------


def test_a_key_is_401_on_the_app_api_and_cannot_manage_keys(user):
    key, raw = api_key_create(user=user, name="k")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    error = assert_error(client.get("/api/v1/me"), 401, "not_authenticated")
    assert "/v1/" in error["message"]
    before = _snapshot()
    assert_error(client.get(URL), 401, "not_authenticated")
    assert_error(client.post(URL, {"name": "more"}, format="json"), 401, "not_authenticated")
    assert_error(client.delete(f"{URL}/{key.pk}"), 401, "not_authenticated")
    assert _snapshot() == before


def test_the_session_authentication_refuses_keys_without_a_query(user, django_assert_num_queries):
    _, raw = api_key_create(user=user, name="k")
    request = APIRequestFactory().get("/api/v1/me", HTTP_AUTHORIZATION=f"Bearer {raw}")
    from rest_framework.exceptions import AuthenticationFailed

    with django_assert_num_queries(0), pytest.raises(AuthenticationFailed):
        BearerTokenAuthentication().authenticate(request)


# --- the per-key throttle -------------------------------------------------------------------------


class ThreePerMinute(ApiKeyThrottle):
    rate = "3/min"

    def timer(self) -> float:
        return 6_000_000.0  # the start of a 60-second window: no window turns mid-test


class Throttled(WhoAmI):
    throttle_classes = [ThreePerMinute]


class ThrottledSession(Throttled):
    authentication_classes = [BearerTokenAuthentication]

    def get(self, request):
        return Response({"user": request.user.username})


def test_the_rate_comes_from_settings(settings):
    throttle = ApiKeyThrottle()
    assert throttle.scope == "api_key"
    configured = settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]["api_key"]
    assert (throttle.num_requests, throttle.duration) == throttle.parse_rate(configured)


def test_each_key_has_its_own_budget(user):
    _, first = api_key_create(user=user, name="one")
    _, second = api_key_create(user=user, name="two")
    assert [_call(Throttled, f"Bearer {first}").status_code for _ in range(3)] == [200] * 3
    refused = _call(Throttled, f"Bearer {first}")
    assert refused.status_code == 429
    assert refused.data["error"]["code"] == "rate_limited"
    assert refused["Retry-After"] == "60"
    # The same user's other key is counted apart.
    assert [_call(Throttled, f"Bearer {second}").status_code for _ in range(3)] == [200] * 3
    assert _call(Throttled, f"Bearer {second}").status_code == 429
    # Refused requests count too: the first key stays refused.
    assert _call(Throttled, f"Bearer {first}").status_code == 429


def test_the_throttle_fails_open_without_redis(user, monkeypatch):
    import redis

    def down():
        raise redis.exceptions.ConnectionError("Connection refused")

    monkeypatch.setattr("config.core.throttles.redis_client", down)
    _, raw = api_key_create(user=user, name="k")
    assert [_call(Throttled, f"Bearer {raw}").status_code for _ in range(5)] == [200] * 5


def test_the_throttle_ignores_requests_without_a_key(user):
    token = token_for(user)
    assert [_call(ThrottledSession, f"Bearer {token}").status_code for _ in range(6)] == [200] * 6


# --- account deletion ------------------------------------------------------------------------------


def test_deleting_the_account_leaves_no_usable_key(user):
    _, raw = api_key_create(user=user, name="k")
    api = client_for(user)
    assert api.delete("/api/v1/me").status_code == 204
    assert not ApiKey.objects.exists()
    assert api_key_lookup(raw) is None
    assert _call(WhoAmI, f"Bearer {raw}").status_code == 401


# --- admin --------------------------------------------------------------------------------------------


def test_the_admin_lists_keys_and_revokes_them(make_user, user):
    staff = make_user(username="keeper", is_staff=True, is_superuser=True)
    key, raw = api_key_create(user=user, name="ci bot")
    client = APIClient()
    client.force_login(staff)
    page = client.get("/admin/accounts/apikey/")
    assert page.status_code == 200
    html = page.content.decode()
    assert key.prefix in html and "ci bot" in html and raw not in html
    assert client.get("/admin/accounts/apikey/add/").status_code == 403
    response = client.post(
        "/admin/accounts/apikey/",
        {"action": "revoke", "_selected_action": [str(key.pk)]},
    )
    assert response.status_code == 302
    assert api_key_lookup(raw) is None
    change = client.get(f"/admin/accounts/apikey/{key.pk}/change/")
    assert change.status_code == 200 and raw not in change.content.decode()

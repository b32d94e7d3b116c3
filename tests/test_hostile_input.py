"""Hostile input never gets a 500 (issue #27, findings 6 and 7).

- Body limits: refused with 413 `too_large` before the body is read, at the ASGI edge
  (config.core.limits.BodyLimitMiddleware, proved with a receive() that would stream a terabyte
  and with a real uvicorn server) and again inside Django (the test client, Django's own
  RequestDataTooBig / TooManyFieldsSent).
- Cursors are opaque and checked: every list endpoint answers forged, foreign, edited or
  absurd cursors with 400 `invalid` (`fields.cursor`), and follower cursors carry no row ids.
- JSON bodies: deep nesting, NaN/Infinity, NUL, lone surrogates and invalid UTF-8 are 400.
- Query strings and paths: NUL bytes, non-numeric limits, non-UUID ids are 4xx.
After every refusal nothing was written.
"""

from __future__ import annotations

import asyncio
import base64
import json
import select
import socket
import threading
import time
import uuid
from datetime import timedelta

import pytest
from django.conf import settings as django_settings
from django.core.signals import request_started
from django.utils import timezone

from accounts.models import AuthToken, Follow
from accounts.services import follow_create
from cameos.models import Cameo
from cameos.services import access_request_create, cameo_grant
from feed.models import Comment
from feed.services import comment_create
from generation.models import Generation
from tests.conftest import client_for
from tests.factories import PASSWORD
from tests.helpers import assert_error

pytestmark = pytest.mark.django_db

MiB = 1024 * 1024


def b64(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


# --- every list endpoint, with two pages of data ------------------------------------------------


@pytest.fixture
def world(user, other, make_user, make_post, make_video_row, active_cameo):
    """alice (the caller) with at least two rows in every list she can page through."""
    carol = make_user(username="carol")
    for fan in (other, carol):
        follow_create(follower=fan, followee=user)  # followers + notifications
        follow_create(follower=user, followee=fan)  # following
    alice = client_for(user)
    alice.post("/api/v1/me/invites")
    alice.post("/api/v1/me/invites")
    alice.post("/api/v1/me/api-keys", {"name": "one"}, format="json")
    alice.post("/api/v1/me/api-keys", {"name": "two"}, format="json")
    cameo = active_cameo(user)
    active_cameo(user, handle="second_thing")
    for requester in (other, carol):
        access_request_create(cameo=cameo, requester=requester)
    dave, erin = make_user(username="dave"), make_user(username="erin")
    cameo_grant(cameo=cameo, user=dave, granted_by=user)
    cameo_grant(cameo=cameo, user=erin, granted_by=user)
    make_video_row(user, cameos=[cameo])  # drafts, generations, appearances
    make_video_row(user, cameos=[cameo])
    root = make_post(other)
    middle = make_post(other, remix_of=root)
    leaf = make_post(carol, remix_of=middle)  # lineage: middle, root
    make_post(carol, remix_of=root)  # root's remixes: middle and this one
    for body in ("first", "second"):
        comment_create(user=other, post=root, body=body)
    make_post(other)
    # Two webhook endpoints, the first with two deliveries (rows: registering resolves URLs).
    from generation.models import WebhookDelivery, WebhookEndpoint

    hooks = [
        WebhookEndpoint.objects.create(
            user=user, url=f"https://hooks.example/{i}", events=["video.failed"], secret="whsec_A"
        )
        for i in range(2)
    ]
    for i in range(2):
        WebhookDelivery.objects.create(
            endpoint=hooks[0], event_id=f"evt_{i}", event_type="video.failed", payload={}
        )
    return {"api": alice, "cameo": cameo, "root": root, "leaf": leaf, "webhook": hooks[0]}


LISTS = {
    "invites": "/api/v1/me/invites",
    "api_keys": "/api/v1/me/api-keys",
    "followers": "/api/v1/users/alice/followers",
    "following": "/api/v1/users/alice/following",
    "notifications": "/api/v1/notifications",
    "cameos": "/api/v1/cameos",
    "access_requests": "/api/v1/cameos/{cameo}/access-requests",
    "grants": "/api/v1/cameos/{cameo}/grants",
    "appearances": "/api/v1/cameos/{cameo}/appearances",
    "generations": "/api/v1/generations",
    "drafts": "/api/v1/drafts",
    "comments": "/api/v1/posts/{root}/comments",
    "remixes": "/api/v1/posts/{root}/remixes",
    "lineage": "/api/v1/posts/{leaf}/lineage",
    "feed_for_you": "/api/v1/feed?kind=for_you",
    "feed_following": "/api/v1/feed?kind=following",
    "feed_latest": "/api/v1/feed?kind=latest",
    "webhooks": "/api/v1/me/webhooks",
    "webhook_deliveries": "/api/v1/me/webhooks/{webhook}/deliveries",
}


def url_of(name: str, world) -> str:
    return LISTS[name].format(
        cameo=world["cameo"].pk,
        root=world["root"].pk,
        leaf=world["leaf"].pk,
        webhook=world["webhook"].pk,
    )


def with_params(url: str, **params) -> str:
    from urllib.parse import urlencode

    return url + ("&" if "?" in url else "?") + urlencode(params)


def next_cursor(api, url: str) -> str:
    """The cursor of the second page of `url` (asserting there is one)."""
    from urllib.parse import parse_qs, urlsplit

    r = api.get(with_params(url, limit=1))
    assert r.status_code == 200, (url, r.content[:300])
    assert r.json()["next"], (url, "expected a second page")
    return parse_qs(urlsplit(r.json()["next"]).query)["cursor"][0]


def flip(cursor: str, index: int) -> str:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    char = cursor[index]
    return cursor[:index] + alphabet[(alphabet.index(char) + 1) % 64] + cursor[index + 1 :]


DEEP = "[" * 1000 + "]" * 1000
HOSTILE_CURSORS = {
    "[1,2]": "WzEsMl0",
    "null": b64("null"),
    "true": b64("true"),
    "[null,null]": b64("[null,null]"),
    "[[1]]": b64("[[1]]"),
    "1000-deep": b64(DEEP),
    "typed objects": b64('[{"t":"x"},{"u":"y"}]'),
    "object": b64('{"t":"2024-01-01T00:00:00+00:00"}'),
    "old format": b64('[{"t":"2024-01-01T00:00:00+00:00"},{"u":"' + str(uuid.uuid4()) + '"}]'),
    "[0]": b64("[0]"),
    "[-1]": b64("[-1]"),
    "session": b64('["abc",-5]'),
    "garbage": "not a cursor!",
    "percent": "%%%",
    "nul": "abc\x00def",
    "non-ascii": "ÿÿÿÿ",
    "one char": "A",
    "huge": "A" * 100_000,
}


@pytest.mark.parametrize("name", list(LISTS))
def test_hostile_cursors_are_400_on_every_list(world, name):
    api = world["api"]
    url = url_of(name, world)
    own = next_cursor(api, url)
    # The cursor works, and is opaque: not JSON, not the row ids of the page.
    assert api.get(with_params(url, cursor=own, limit=1)).status_code == 200
    with pytest.raises(ValueError):
        json.loads(base64.urlsafe_b64decode(own + "=" * (-len(own) % 4)))
    other_name = "invites" if name != "invites" else "notifications"
    cursors = {
        **HOSTILE_CURSORS,
        "from another list": next_cursor(api, url_of(other_name, world)),
        "one byte flipped (start)": flip(own, 0),
        "one byte flipped (middle)": flip(own, len(own) // 2),
        "one byte flipped (end)": flip(own, len(own) - 2),
        "truncated": own[:-4],
        "extended": own + "AAAA",
    }
    failures = {}
    for label, cursor in cursors.items():
        r = api.get(with_params(url, cursor=cursor))
        body = r.json()
        if r.status_code != 400 or body.get("error", {}).get("code") != "invalid":
            failures[label] = (r.status_code, str(body)[:200])
        elif "cursor" not in body["error"].get("fields", {}):
            failures[label] = ("no fields.cursor", body)
    assert not failures, failures


def test_a_cursor_of_one_post_does_not_open_another_posts_list(world, other, make_post):
    api = world["api"]
    cursor = next_cursor(api, url_of("comments", world))
    post = make_post(other)
    for body in ("a", "b"):
        comment_create(user=other, post=post, body=body)
    r = api.get(f"/api/v1/posts/{post.pk}/comments?cursor={cursor}")
    assert_error(r, 400, "invalid", "cursor")


def test_feed_kinds_do_not_share_cursors(world):
    api = world["api"]
    latest = next_cursor(api, url_of("feed_latest", world))
    following = next_cursor(api, url_of("feed_following", world))
    r = api.get(with_params("/api/v1/feed?kind=following", cursor=latest))
    assert_error(r, 400, "invalid", "cursor")
    r = api.get(with_params("/api/v1/feed?kind=latest", cursor=following))
    assert_error(r, 400, "invalid", "cursor")


def test_for_you_served_as_latest_while_redis_is_down_keeps_scrolling(world, monkeypatch):
    import redis

    import feed.ranking as ranking

    api = world["api"]

    def down(**kwargs):
        raise redis.ConnectionError("redis is down")

    monkeypatch.setattr(ranking, "snapshot_save", down)
    first = api.get("/api/v1/feed?kind=for_you&limit=1").json()
    assert first["results"][0]["reason"] == "latest" and first["next"]
    monkeypatch.undo()
    # Redis is back; the scroll started as Latest goes on as Latest, not 400.
    r = api.get(first["next"])
    assert r.status_code == 200, r.content
    assert r.json()["results"][0]["reason"] == "latest"
    assert r.json()["results"][0]["post"]["id"] != first["results"][0]["post"]["id"]


def test_cursors_survive_a_key_rotation_only_with_the_old_key_as_fallback(world, settings):
    api = world["api"]
    url = url_of("followers", world)
    cursor = next_cursor(api, url)
    old_key = settings.SECRET_KEY
    settings.SECRET_KEY = "rotated-" + "k" * 50
    settings.SECRET_KEY_FALLBACKS = [old_key]
    assert api.get(with_params(url, cursor=cursor)).status_code == 200
    settings.SECRET_KEY_FALLBACKS = []
    assert_error(api.get(with_params(url, cursor=cursor)), 400, "invalid", "cursor")


def test_follower_pages_use_the_other_users_uuid_not_the_row_id(user, make_user):
    """Several follows at the same instant page correctly by (created_at, follower uuid)."""
    fans = [make_user() for _ in range(5)]
    for fan in fans:
        follow_create(follower=fan, followee=user)
    Follow.objects.filter(followee=user).update(created_at=timezone.now() - timedelta(hours=1))
    api, seen, url = client_for(user), [], "/api/v1/users/alice/followers?limit=2"
    while url:
        body = api.get(url).json()
        seen += [row["user"]["username"] for row in body["results"]]
        url = body["next"]
    expected = sorted(fans, key=lambda u: u.pk, reverse=True)
    assert seen == [u.username for u in expected]


# --- query strings and paths --------------------------------------------------------------------


@pytest.mark.parametrize(
    "query",
    ["limit=NaN", "limit=1e3", "limit=-1", "limit=0", "limit=" + "9" * 5000, "limit=%00"],
    ids=["NaN", "1e3", "-1", "0", "5000 digits", "NUL"],
)
def test_bad_limits_are_400(world, query):
    for name in ("followers", "comments", "lineage", "feed_latest", "feed_for_you"):
        url = url_of(name, world)
        r = world["api"].get(url + ("&" if "?" in url else "?") + query)
        assert_error(r, 400, "invalid")


def test_a_huge_limit_is_capped(world):
    r = world["api"].get("/api/v1/me/invites?limit=99999999999")
    assert r.status_code == 200 and len(r.json()["results"]) == 2


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/users/a%00b",
        "/api/v1/users/alice%00/followers",
        "/api/v1/users/%00/follow",
        "/api/v1/cameos?scope=mine%00",
        "/api/v1/feed?kind=latest&cursor=%00",
        "/api/v1/posts/{root}/tree?depth=%00",
        "/api/v1/me?x%00=1",
    ],
)
def test_nul_in_paths_and_query_strings_is_400(world, path):
    api = world["api"]
    r = api.get(path.format(root=world["root"].pk))
    assert_error(r, 400, "invalid")
    r = api.post(path.format(root=world["root"].pk))
    assert_error(r, 400, "invalid")
    assert Follow.objects.count() == 4


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/cameos/not-a-uuid",
        "/api/v1/posts/1/comments",
        "/api/v1/generations/00000000-0000-0000-0000-00000000000g",
        "/api/v1/videos/' or 1=1 --/content",
        "/api/v1/me/webhooks/1/deliveries",
        "/api/v1/me/webhooks/%E2%80%AE/deliveries/1/redeliver",
        "/api/v1/me/api-keys/not-a-uuid",
    ],
)
def test_ids_that_are_not_uuids_are_404(api, path):
    assert_error(api.get(path), 404, "not_found")


@pytest.mark.parametrize(
    "days",
    ["²", "1e3", "-1", "0", "366", "NaN", "9" * 5000],
    ids=["superscript", "1e3", "-1", "0", "366", "NaN", "5000 digits"],
)
def test_creation_metrics_days_must_be_a_plain_number(make_user, days):
    staff = client_for(make_user(username="staffer", is_staff=True))
    r = staff.get("/api/v1/metrics/creation", {"days": days})
    assert_error(r, 400, "invalid", "days")


# --- JSON bodies --------------------------------------------------------------------------------


def deep_array(levels: int) -> str:
    return "[" * levels + "]" * levels


def deep_object(levels: int) -> str:
    return '{"a":' * levels + "1" + "}" * levels


def post_json(client, path: str, raw: str | bytes, method: str = "post"):
    return getattr(client, method)(path, data=raw, content_type="application/json")


@pytest.mark.parametrize("make_body", [deep_array, deep_object], ids=["array", "object"])
def test_50000_deep_json_bodies_are_400(world, user, make_body):
    api, root = world["api"], world["root"]
    raw = make_body(50_000)
    before = (Cameo.objects.count(), Generation.objects.count(), Comment.objects.count())
    for method, path in [
        ("post", "/api/v1/cameos"),
        ("post", "/api/v1/generations"),
        ("post", f"/api/v1/posts/{root.pk}/comments"),
        ("post", "/api/v1/feed/events"),
        ("post", "/api/v1/notifications/read"),
        ("patch", "/api/v1/me"),
    ]:
        r = post_json(api, path, raw, method)
        error = assert_error(r, 400, "invalid")
        assert "nested deeper" in error["message"], (path, error)
    assert (Cameo.objects.count(), Generation.objects.count(), Comment.objects.count()) == before
    user.refresh_from_db()
    assert user.display_name == "" and user.bio == ""


def test_deep_json_on_the_anonymous_login_is_400(user):
    from rest_framework.test import APIClient

    anon = APIClient()
    r = post_json(anon, "/api/v1/auth/login", deep_object(5_000))  # 30 KB: under the anon limit
    assert_error(r, 400, "invalid")
    assert AuthToken.objects.count() == 0


def test_nesting_is_refused_just_past_the_bound(world):
    from config.core.parsers import MAX_DEPTH

    api = world["api"]
    too_deep = post_json(api, "/api/v1/me", deep_array(MAX_DEPTH + 1), "patch")
    assert "nested deeper" in assert_error(too_deep, 400, "invalid")["message"]
    # At the bound the parser accepts it and the serializer judges the content.
    at_bound = post_json(api, "/api/v1/me", deep_array(MAX_DEPTH), "patch")
    assert "nested deeper" not in assert_error(at_bound, 400, "invalid")["message"]
    # Brackets inside strings are text, not nesting.
    ok = post_json(api, "/api/v1/me", json.dumps({"bio": "[" * 200 + "{" * 90}), "patch")
    assert ok.status_code == 200 and ok.json()["bio"] == "[" * 200 + "{" * 90


@pytest.mark.parametrize(
    "raw",
    [
        '{"display_name": NaN}',
        '{"display_name": Infinity}',
        '{"display_name": -Infinity}',
        '{"display_name": 1e999}',
        '{"display_name": ' + "1" * 5000 + "}",
        '{"display_name": "a\\u0000b"}',
        '{"a\\u0000": "x"}',
        '{"display_name": "\\ud800"}',
        '{"bio": "\\udc00 tail"}',
        b'{"display_name": "\xff\xfe"}',
        b"\xef\xbb\xbf{}",
        '{"display_name": "unterminated',
        "",
        "   ",
    ],
)
def test_malformed_json_is_400_and_changes_nothing(world, user, raw):
    r = post_json(world["api"], "/api/v1/me", raw, "patch")
    if raw in ("", "   ") and r.status_code == 200:
        return  # an empty body is an empty partial update
    assert_error(r, 400, "invalid")
    user.refresh_from_db()
    assert (user.display_name, user.bio) == ("", "")


def test_nul_in_a_login_username_is_400():
    from rest_framework.test import APIClient

    r = APIClient().post(
        "/api/v1/auth/login", {"username": "al\x00ice", "password": PASSWORD}, format="json"
    )
    assert_error(r, 400, "invalid")
    assert AuthToken.objects.count() == 0


# --- body limits inside Django (test client, WSGI) ---------------------------------------------


def test_an_anonymous_body_over_its_limit_is_413(user):
    from rest_framework.test import APIClient

    raw = json.dumps({"username": "alice", "password": PASSWORD, "pad": "x" * 70_000})
    r = post_json(APIClient(), "/api/v1/auth/login", raw)
    assert_error(r, 413, "too_large")
    assert AuthToken.objects.count() == 0
    # The same body with credentials attached gets the authenticated limit.
    r = post_json(client_for(user), "/api/v1/cameos", json.dumps({"pad": "x" * 70_000}))
    assert_error(r, 400, "invalid")


def test_an_authenticated_json_body_over_1_mib_is_413(world):
    raw = json.dumps({"kind": "object", "display_name": "x", "pad": "x" * MiB})
    before = Cameo.objects.count()
    assert_error(post_json(world["api"], "/api/v1/cameos", raw), 413, "too_large")
    raw = json.dumps({"pad": "x" * 6 * MiB})  # past the old 5 MiB RequestDataTooBig too
    assert_error(post_json(world["api"], "/api/v1/cameos", raw), 413, "too_large")
    assert Cameo.objects.count() == before


def test_a_declared_terabyte_is_413_before_reading(world):
    cameo = world["cameo"]
    r = world["api"].put(
        f"/api/v1/cameos/{cameo.pk}/recording",
        data=b"--x--",
        content_type="multipart/form-data; boundary=x",
        CONTENT_LENGTH=str(10**12),
    )
    assert_error(r, 413, "too_large")
    cameo.refresh_from_db()
    assert cameo.status == "active"


def test_a_recording_over_its_cap_is_413(world, settings):
    settings.RIFF_BODY_LIMITS = [
        ("PUT", r"^/api/v1/cameos/[^/]+/recording$", 64 * 1024, 1024),
    ]
    cameo = world["cameo"]
    r = world["api"].put(
        f"/api/v1/cameos/{cameo.pk}/recording",
        {"video": ("big.mp4", b"\0" * 70 * 1024)},
        format="multipart",
    )
    assert_error(r, 413, "too_large")


def multipart(parts: list[tuple[str, str | None, bytes]], boundary: str = "BoUnDaRy") -> bytes:
    out = b""
    for name, filename, content in parts:
        disposition = f'form-data; name="{name}"'
        if filename:
            disposition += f'; filename="{filename}"'
        out += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n".encode()
        if filename:
            out += b"Content-Type: application/octet-stream\r\n"
        out += b"\r\n" + content + b"\r\n"
    return out + f"--{boundary}--\r\n".encode()


def test_a_huge_form_field_is_413_not_500(world, user):
    # Within the avatar route's limit, but one text field past DATA_UPLOAD_MAX_MEMORY_SIZE:
    # Django raises RequestDataTooBig inside the parser.
    body = multipart([("note", None, b"x" * 6 * MiB)])
    r = world["api"].put(
        "/api/v1/me/avatar", data=body, content_type="multipart/form-data; boundary=BoUnDaRy"
    )
    assert_error(r, 413, "too_large")
    user.refresh_from_db()
    assert (user.avatar_large, user.avatar_small) == ("", "")


def test_too_many_form_fields_is_413_not_500(world, user):
    body = multipart([(f"f{i}", None, b"1") for i in range(1_001)])
    r = world["api"].put(
        "/api/v1/me/avatar", data=body, content_type="multipart/form-data; boundary=BoUnDaRy"
    )
    assert_error(r, 413, "too_large")
    user.refresh_from_db()
    assert (user.avatar_large, user.avatar_small) == ("", "")


def test_too_many_files_is_413_not_500(world, user, settings):
    body = multipart(
        [(f"f{i}", f"{i}.bin", b"1") for i in range(settings.DATA_UPLOAD_MAX_NUMBER_FILES + 1)]
    )
    r = world["api"].put(
        "/api/v1/me/avatar", data=body, content_type="multipart/form-data; boundary=BoUnDaRy"
    )
    assert_error(r, 413, "too_large")


# --- body limits at the ASGI edge: Django never sees the body ----------------------------------


def http_scope(method: str, path: str, headers: list[tuple[bytes, bytes]]) -> dict:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"testserver"), *headers],
        "client": ("127.0.0.1", 5000),
        "server": ("testserver", 80),
    }


class Stream:
    """An ASGI receive() that would send `total` bytes in `chunk`-sized messages (a terabyte
    takes ~15 million calls: a test that finishes proves the reader stopped early)."""

    def __init__(self, total: int, chunk: int = 64 * 1024) -> None:
        self.total, self.chunk, self.sent, self.calls = total, chunk, 0, 0

    async def __call__(self) -> dict:
        self.calls += 1
        size = min(self.chunk, self.total - self.sent)
        self.sent += size
        return {"type": "http.request", "body": b"\0" * size, "more_body": self.sent < self.total}


def run_asgi(app, scope, receive) -> tuple[int | None, dict, list[dict]]:
    sent: list[dict] = []

    async def send(message):
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    start = next((m for m in sent if m["type"] == "http.response.start"), None)
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return (start["status"] if start else None), (json.loads(body) if body else {}), sent


@pytest.fixture
def django_requests():
    """Counts requests that reached Django (request_started fires once the body is read)."""
    seen = []

    def note(**kwargs):
        seen.append(kwargs)

    request_started.connect(note)
    yield seen
    request_started.disconnect(note)


def never_read():
    async def receive():
        raise AssertionError("the body was read")

    return receive


BEARER = (b"authorization", b"Bearer whatever")


def test_asgi_declared_terabyte_is_413_without_reading(django_requests):
    from config.asgi import application

    path = f"/api/v1/cameos/{uuid.uuid4()}/recording"
    for headers in ([BEARER], []):
        scope = http_scope("PUT", path, [*headers, (b"content-length", str(10**12).encode())])
        status, body, sent = run_asgi(application, scope, never_read())
        assert status == 413 and body["error"]["code"] == "too_large"
        assert (b"connection", b"close") in sent[0]["headers"]
    assert django_requests == []


@pytest.mark.parametrize(
    "method,path,headers,limit",
    [
        ("POST", "/api/v1/cameos", [BEARER], 1 * MiB),
        ("POST", "/api/v1/auth/login", [], 64 * 1024),
        ("PUT", "/api/v1/me/avatar", [], 64 * 1024),
        ("POST", "/admin/login/", [], 2 * MiB),
    ],
    ids=["json", "anonymous", "anonymous upload", "admin"],
)
def test_asgi_streamed_terabyte_stops_at_the_limit(django_requests, method, path, headers, limit):
    from config.asgi import application

    stream = Stream(total=10**12)
    scope = http_scope(method, path, [*headers, (b"transfer-encoding", b"chunked")])
    status, body, _ = run_asgi(application, scope, stream)
    assert status == 413 and body["error"]["code"] == "too_large"
    # It read just past the limit, never the terabyte; Django saw no request.
    assert limit < stream.sent <= limit + stream.chunk
    assert django_requests == []


def test_asgi_lying_content_length_is_counted(django_requests):
    from config.asgi import application

    stream = Stream(total=10 * MiB)
    scope = http_scope("POST", "/api/v1/generations", [BEARER, (b"content-length", b"100")])
    status, body, _ = run_asgi(application, scope, stream)
    assert status == 413 and stream.sent <= MiB + stream.chunk
    assert django_requests == []


def limited(app):
    from config.core.limits import BodyLimitMiddleware

    return BodyLimitMiddleware(app)


def echo_app():
    """An inner app that reads the whole body and answers its length."""
    calls = []

    async def app(scope, receive, send):
        total, more = 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                calls.append("disconnect")
                return
            total += len(message.get("body", b""))
            more = message.get("more_body", False)
        calls.append(total)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": str(total).encode()})

    return app, calls


def upload_limit(name: str):
    return lambda: getattr(django_settings, name) + django_settings.RIFF_BODY_MULTIPART_OVERHEAD


@pytest.mark.parametrize(
    "method,path,headers,limit",
    [
        ("POST", "/api/v1/auth/login", [], lambda: 64 * 1024),
        ("PATCH", "/api/v1/me", [BEARER], lambda: MiB),
        ("PUT", "/api/v1/cameos/x/recording", [BEARER], upload_limit("RIFF_CAMEO_MAX_BYTES")),
        ("PUT", "/api/v1/me/avatar", [BEARER], upload_limit("RIFF_AVATAR_MAX_BYTES")),
        ("POST", "/api/v1/provenance/verify", [BEARER], upload_limit("RIFF_PROVENANCE_MAX_BYTES")),
    ],
    ids=["anonymous", "json", "recording", "avatar", "provenance"],
)
def test_asgi_limit_is_exact_per_route(method, path, headers, limit):
    limit = limit()
    app, calls = echo_app()
    wrapped = limited(app)
    # Declared: at the limit it goes through (untouched), one byte more is refused unread.
    at = http_scope(method, path, [*headers, (b"content-length", str(limit).encode())])
    status, _, _ = run_asgi(wrapped, at, Stream(total=limit, chunk=MiB))
    assert status == 200 and calls == [limit]
    over = http_scope(method, path, [*headers, (b"content-length", str(limit + 1).encode())])
    assert run_asgi(wrapped, over, never_read())[0] == 413
    # Streamed without a length: the same bound on the bytes themselves.
    chunked = http_scope(method, path, [*headers])
    status, _, _ = run_asgi(wrapped, chunked, Stream(total=limit, chunk=MiB))
    assert status == 200 and calls[-1] == limit
    status, body, _ = run_asgi(wrapped, chunked, Stream(total=limit + 1, chunk=MiB))
    assert status == 413 and body["error"]["code"] == "too_large"
    assert calls[-1] == "disconnect"


def test_asgi_other_scopes_pass_through():
    seen = []

    async def app(scope, receive, send):
        seen.append(scope["type"])

    wrapped = limited(app)
    asyncio.run(wrapped({"type": "websocket", "path": "/ws/", "headers": []}, never_read(), None))
    asyncio.run(wrapped({"type": "lifespan"}, never_read(), None))
    assert seen == ["websocket", "lifespan"]


# --- the same through a real uvicorn server -----------------------------------------------------


@pytest.fixture
def live_server_url():
    import uvicorn

    from config.asgi import application

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(application, host="127.0.0.1", port=port, lifespan="off", log_level="error")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    yield ("127.0.0.1", port)
    server.should_exit = True
    thread.join(timeout=10)


def read_response(sock: socket.socket) -> tuple[int, dict]:
    sock.settimeout(5)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        rest += chunk
    return status, json.loads(rest[:length])


def test_uvicorn_refuses_a_declared_terabyte_at_once(live_server_url):
    with socket.create_connection(live_server_url, timeout=5) as sock:
        sock.sendall(
            (
                f"PUT /api/v1/cameos/{uuid.uuid4()}/recording HTTP/1.1\r\n"
                "Host: 127.0.0.1\r\nAuthorization: Bearer whatever\r\n"
                "Content-Type: multipart/form-data; boundary=x\r\n"
                f"Content-Length: {10**12}\r\nExpect: 100-continue\r\n\r\n"
            ).encode()
        )
        status, body = read_response(sock)
    assert status == 413 and body["error"]["code"] == "too_large"


def test_uvicorn_stops_a_chunked_stream_at_the_limit(live_server_url):
    chunk = b"\0" * (64 * 1024)
    sent = 0
    with socket.create_connection(live_server_url, timeout=5) as sock:
        sock.sendall(
            b"POST /api/v1/auth/login HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        try:
            # Up to 64 MiB; the server answers (and stops reading) after 64 KiB.
            for _ in range(1024):
                if select.select([sock], [], [], 0)[0]:
                    break  # the answer is there: stop sending, like a well-behaved client
                sock.sendall(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
                sent += len(chunk)
        except OSError:
            pass  # the server closed the connection: it stopped reading
        status, body = read_response(sock)
    assert status == 413 and body["error"]["code"] == "too_large"
    assert sent < 64 * MiB


def test_uvicorn_passes_small_bodies_through(live_server_url):
    with socket.create_connection(live_server_url, timeout=5) as sock:
        payload = b'{"a": 1}'
        sock.sendall(
            b"POST /api/v1/no-such-endpoint HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
            % (len(payload), payload)
        )
        status, body = read_response(sock)
    assert status == 404 and body["error"]["code"] == "not_found"

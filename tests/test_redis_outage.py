"""A Redis outage is not an API outage (issue #27): throttles, caches and feeds degrade, what
truly needs Redis answers 503 `unavailable`, nothing answers 500 or hangs, and jobs accepted
while Redis was down finish once it is back (docs/operations.md, "When Redis is down").

The app is pointed at a real `redis-server` of its own on a spare port, which the tests stop
(connections refused) or freeze with SIGSTOP (connections that never answer).
"""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import kombu.exceptions
import kombu.pools
import pytest
import redis
from celery.contrib.testing.worker import start_worker
from celery.signals import task_postrun
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connections
from django.test import Client
from django.urls import Resolver404, get_resolver
from drf_spectacular.generators import SchemaGenerator
from rest_framework.test import APIClient

from accounts.apikeys import api_key_create
from accounts.models import Follow
from accounts.services import invite_mint
from cameos.services import access_request_create, cameo_create, cameo_grant
from config.celery import app as celery_app
from config.core.errors import exception_handler
from feed.models import EventKind, FeedEvent
from feed.selectors import post_counts
from generation.models import Generation, GenerationStatus
from generation.services.jobs import generation_reap
from tests.conftest import client_for, png_bytes
from tests.e2e.test_cameo_verification import wait_for
from tests.factories import PASSWORD, UserFactory
from tests.helpers import assert_error
from tests.media import make_video

# --- a disposable Redis, and the app pointed at it ---------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class SpareRedis:
    """A `redis-server` of the test's own: no persistence, its own directory and port."""

    def __init__(self, directory: Path) -> None:
        self.port = _free_port()
        self.directory = directory
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--save", "",
                "--appendonly", "no",
                "--dir", str(self.directory),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        probe = redis.Redis(port=self.port, socket_timeout=0.5, socket_connect_timeout=0.5)
        deadline = time.monotonic() + 10
        while True:
            try:
                probe.ping()
                return
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def stop(self) -> None:
        assert self.process is not None
        self.process.terminate()
        self.process.wait(timeout=10)

    def freeze(self) -> None:
        """The server keeps accepting connections but never answers (a hung Redis)."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()  # works on a frozen one too
            self.process.wait(timeout=10)

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, socket_timeout=2)


@pytest.fixture
def spare_redis(tmp_path):
    server = SpareRedis(tmp_path)
    server.start()
    yield server
    server.kill()


def _reset_celery_connections() -> None:
    # The broker pool, the producer pool and the result backend keep connections to the URL
    # they were made with; dropping them makes the next use connect to the current one.
    if celery_app._pool is not None:
        celery_app._pool.force_close_all()
    celery_app._pool = None
    # kombu also keeps producer pools in a process-wide registry keyed by broker URL; one left
    # holding a closed connection pool breaks every later publish to that URL.
    kombu.pools.reset()
    amqp = celery_app.__dict__.get("amqp")
    if amqp is not None:
        amqp._producer_pool = None
    celery_app._backend_cache = None
    celery_app._local.__dict__.pop("backend", None)


@pytest.fixture
def point_app_at(settings):
    """Points every Redis user in this process at a URL: the Django cache (throttles,
    tickets, shared feed lists), config.core.redis (inboxes, snapshots, dedupe), the channel layer,
    and Celery's broker. Settings read at import are re-read because their caches reset."""
    saved = (celery_app.conf.broker_url, celery_app.conf.result_backend)

    def point(url: str) -> None:
        settings.REDIS_URL = url
        settings.CACHES = {"default": {**settings.CACHES["default"], "LOCATION": url}}
        layer = settings.CHANNEL_LAYERS["default"]
        settings.CHANNEL_LAYERS = {
            "default": {**layer, "CONFIG": {**layer["CONFIG"], "hosts": [url]}}
        }
        celery_app.conf.broker_url = url
        celery_app.conf.result_backend = url
        _reset_celery_connections()

    yield point
    celery_app.conf.broker_url, celery_app.conf.result_backend = saved
    _reset_celery_connections()


@pytest.fixture
def redis_down(point_app_at):
    """The app pointed at a port nothing listens on: every Redis call is refused."""
    point_app_at(f"redis://127.0.0.1:{_free_port()}/0")


def assert_unavailable(response) -> None:
    assert_error(response, 503, "unavailable")
    assert response["Retry-After"] == "5"


# --- the safety net and the degraded components, one at a time ---------------------------------


@pytest.mark.parametrize(
    "exc",
    [
        redis.exceptions.ConnectionError("Connection refused"),
        redis.exceptions.TimeoutError("Timeout reading from socket"),
        redis.exceptions.ReadOnlyError("You can't write against a read only replica."),
        kombu.exceptions.OperationalError("Error 111 connecting to 127.0.0.1:6379."),
    ],
    ids=lambda exc: type(exc).__name__,
)
def test_a_redis_or_broker_error_reaching_a_view_is_503_not_500(exc):
    response = exception_handler(exc, {"request": None})
    assert response.status_code == 503
    assert response.data["error"]["code"] == "unavailable"
    assert response.headers["Retry-After"] == "5"


def test_other_redis_errors_are_still_bugs():
    response = exception_handler(redis.exceptions.ResponseError("WRONGTYPE"), {"request": None})
    assert response.status_code == 500


def test_ticket_mint_needs_redis_and_says_so(api, redis_down):
    assert_unavailable(api.post("/api/v1/realtime/ticket"))


def test_throttled_endpoints_fail_open(api, user, redis_down):
    # The user throttle and the login throttles read their windows from Redis.
    assert api.get("/api/v1/me").status_code == 200
    response = Client().post(
        "/api/v1/auth/login",
        {"username": user.username, "password": PASSWORD},
        content_type="application/json",
    )
    assert response.status_code == 200, response.content


def test_generation_accepted_while_the_broker_is_down_is_sent_once_it_is_back(
    api, spare_redis, point_app_at, settings, django_capture_on_commit_callbacks
):
    point_app_at(spare_redis.url)
    spare_redis.stop()
    started = time.monotonic()
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post("/api/v1/generations", {"prompt": "a red ball"}, format="json")
    assert response.status_code == 202, response.content
    assert time.monotonic() - started < 3
    job = Generation.objects.get(pk=response.json()["id"])
    # Not sent: still queued, and nothing claims a message went out.
    assert (job.status, job.dispatched_at) == (GenerationStatus.QUEUED, None)

    spare_redis.start()
    settings.RIFF_DISPATCH_RESEND_AFTER = 0
    assert generation_reap()["resent"] == 1
    job.refresh_from_db()
    assert job.status == GenerationStatus.QUEUED and job.dispatched_at is not None
    assert spare_redis.client().llen("gpu") == 1


def test_feeds_degrade_and_a_for_you_cursor_waits_for_redis(user, other, make_post, point_app_at):
    alice = client_for(user)
    Follow.objects.create(follower=user, followee=other)
    posts = [make_post(other, caption=f"p{i}") for i in range(3)]
    first = alice.get("/api/v1/feed?kind=for_you&limit=1")
    assert first.status_code == 200
    cursor = parse_qs(urlsplit(first.json()["next"]).query)["cursor"][0]

    point_app_at(f"redis://127.0.0.1:{_free_port()}/0")
    newest_first = [str(p.pk) for p in reversed(posts)]
    for kind in ("following", "latest", "for_you"):  # For You serves Latest without Redis
        response = alice.get(f"/api/v1/feed?kind={kind}")
        assert response.status_code == 200, (kind, response.content)
        assert [i["post"]["id"] for i in response.json()["results"]] == newest_first, kind
    # The cursor names a snapshot only Redis holds: no page can continue it.
    assert_unavailable(alice.get("/api/v1/feed", {"kind": "for_you", "cursor": cursor}))


def test_event_dedupe_falls_back_to_the_event_table(user, other, make_post, redis_down):
    post = make_post(other)
    alice = client_for(user)
    serve_id = alice.get("/api/v1/feed?kind=latest").json()["results"][0]["serve_id"]
    seen = {"post_id": str(post.pk), "serve_id": serve_id, "event": "impression"}
    done = {**seen, "event": "completed"}

    def counts():
        row = post_counts([post.pk])[post.pk]
        return row["views"], row["completes"]

    response = alice.post("/api/v1/feed/events", [seen, seen, done], format="json")
    assert response.status_code == 202 and response.json() == {"accepted": 3, "rejected": 0}
    assert counts() == (1, 1)
    # A replay (the client retrying a batch) is stored but counts nothing.
    response = alice.post("/api/v1/feed/events", [seen, done], format="json")
    assert response.status_code == 202 and response.json() == {"accepted": 2, "rejected": 0}
    assert counts() == (1, 1)
    assert FeedEvent.objects.filter(user_id=user.pk, post_id=post.pk).count() == 5


def test_teen_cap_counts_from_the_database_without_redis(
    make_user, other, make_post, teen_birth_date, settings, redis_down
):
    settings.RIFF_FEED_TEEN_DAILY_CAP = 2
    teen = make_user(username="teen", birth_date=teen_birth_date)
    posts = [make_post(other, caption=f"p{i}") for i in range(4)]
    FeedEvent.objects.bulk_create(
        FeedEvent(user_id=teen.pk, post_id=p.pk, serve_id="s", kind=EventKind.IMPRESSION)
        for p in posts[:1]
    )
    body = client_for(teen).get("/api/v1/feed?kind=latest").json()
    # One post seen today, so one more fits before the daily-limit card.
    assert [i["kind"] for i in body["results"]] == ["post", "create_prompt"]
    assert body["results"][1]["prompt"]["type"] == "daily_limit" and body["next"] is None


def test_work_queued_after_a_write_is_resent_by_the_sweepers(
    user, api, make_post, spare_redis, point_app_at, django_capture_on_commit_callbacks
):
    """The write stands while the broker is down (the request answers as usual); once it is
    back, beat's sweepers send what was lost: cameo verification and embeddings."""
    from datetime import timedelta

    from django.utils import timezone

    from cameos.models import Cameo, CameoStatus
    from cameos.tasks import cameo_verify_sweep
    from feed.models import FeedPreference, Post
    from feed.tasks import feed_embeddings_sweep

    point_app_at(spare_redis.url)
    cameo = cameo_create(owner=user, kind="object", display_name="mug")
    spare_redis.stop()
    with django_capture_on_commit_callbacks(execute=True):
        video = SimpleUploadedFile("me.mp4", make_video(2.5), content_type="video/mp4")
        r = api.put(f"/api/v1/cameos/{cameo.pk}/recording", {"video": video}, format="multipart")
        assert r.status_code == 202, r.content
        post = make_post(user)
        r = api.put("/api/v1/feed/preferences", {"steer": "more cats"}, format="json")
        assert r.status_code == 200, r.content
    assert Cameo.objects.get(pk=cameo.pk).status == CameoStatus.VERIFYING

    spare_redis.start()
    an_hour_ago = timezone.now() - timedelta(hours=1)
    Cameo.objects.filter(pk=cameo.pk).update(updated_at=an_hour_ago)
    Post.objects.filter(pk=post.pk).update(created_at=an_hour_ago)
    FeedPreference.objects.filter(user=user).update(updated_at=an_hour_ago)
    assert cameo_verify_sweep() == 1
    assert feed_embeddings_sweep() == 2  # the post and the steering text
    queued = spare_redis.client()
    assert (queued.llen("media"), queued.llen("default")) == (1, 2)
    # Nothing stuck, nothing sent.
    Cameo.objects.filter(pk=cameo.pk).update(status=CameoStatus.ACTIVE)
    assert cameo_verify_sweep() == 0


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_a_websocket_is_told_to_try_later_while_redis_is_down(redis_down):
    from asgiref.sync import sync_to_async
    from channels.testing import WebsocketCommunicator

    from config.asgi import application
    from tests.factories import token_for

    token = await sync_to_async(lambda: token_for(UserFactory(username="wsuser")))()
    for headers, path in (
        ([(b"authorization", f"Bearer {token}".encode())], "/ws/"),
        ([], "/ws/?ticket=abc"),  # a ticket lives in Redis
    ):
        ws = WebsocketCommunicator(application, path, headers=headers)
        connected, code = await ws.connect(timeout=10)
        assert (connected, code) == (False, 1013)
    await sync_to_async(connections.close_all)()  # asgiref's thread keeps its own connection


# --- every endpoint through an outage ----------------------------------------------------------


@dataclass
class Call:
    method: str
    path: str  # the route as the schema names it, e.g. /api/v1/posts/{post_id}
    url: str
    client: Any
    data: Any = None
    format: str | None = "json"
    params: dict = field(default_factory=dict)
    expect: str = "2xx or 503"  # or "2xx", or "503"
    headers: dict = field(default_factory=dict)

    def send(self):
        kwargs: dict[str, Any] = {
            "HTTP_" + name.upper().replace("-", "_"): value for name, value in self.headers.items()
        }
        if self.data is not None:
            kwargs["data"] = self.data
            if self.format:
                kwargs["format"] = self.format
        if self.params:
            kwargs["data"] = self.params
        return getattr(self.client, self.method.lower())(self.url, **kwargs)


def _schema_operations() -> set[tuple[str, str]]:
    schema = SchemaGenerator().get_schema(request=None, public=True)
    methods = {"get", "post", "put", "patch", "delete"}
    return {
        (method.upper(), path)
        for path, item in schema["paths"].items()
        for method in item
        if method in methods
    }


def _routes_not_swept(urls: list[str]) -> list[str]:
    """Top-level routes (health, metrics, admin, schema, media) no swept URL reaches; the API
    itself is covered operation by operation."""
    missing = []
    for route in get_resolver().url_patterns:
        if str(route.pattern) == "api/v1/":
            continue
        reached = False
        for url in urls:
            with contextlib.suppress(Resolver404):
                reached = reached or bool(route.resolve(urlsplit(url).path.lstrip("/")))
        if not reached:
            missing.append(str(route.pattern))
    return missing


def _world(make_video_row, make_post, active_cameo) -> dict[str, Any]:
    """Real objects for every path parameter, made while Redis is up."""
    alice = UserFactory(username="alice")
    bob, carol, dave, erin, frank, _ = (
        UserFactory(username=name) for name in ("bob", "carol", "dave", "erin", "frank", "gina")
    )
    staff = UserFactory(username="staffer", is_staff=True, is_superuser=True)
    doomed, leaver = UserFactory(username="doomed"), UserFactory(username="leaver")
    Follow.objects.create(follower=alice, followee=bob)
    Follow.objects.create(follower=bob, followee=alice)

    cameo = active_cameo(alice, handle="alicecam")
    cameo_grant(cameo=cameo, user=dave, granted_by=alice)
    approve = access_request_create(cameo=cameo, requester=erin)
    deny = access_request_create(cameo=cameo, requester=frank)
    to_revoke = active_cameo(alice, handle="oldcam")
    to_record = cameo_create(owner=alice, kind="object", display_name="lamp", handle="lamp")

    bobs_post = make_post(bob, caption="bob's")
    for i in range(3):  # enough For You for a second page
        make_post(carol, caption=f"carol's {i}")
    alices_post = make_post(alice, caption="alice's")
    to_delete = make_post(alice, caption="delete me")
    draft = make_video_row(alice)
    appearance = make_video_row(bob, cameos=[cameo])
    queued = Generation.objects.create(owner=alice, prompt="later", seed=3)
    api_key, raw_key = api_key_create(user=alice, name="outage bot")
    integrator = APIClient()
    integrator.credentials(HTTP_AUTHORIZATION=f"Bearer {raw_key}")

    api = client_for(alice)
    avatar = api.put(
        "/api/v1/me/avatar",
        {"image": SimpleUploadedFile("a.png", png_bytes(), content_type="image/png")},
        format="multipart",
    )
    assert avatar.status_code == 200, avatar.content
    feed = api.get("/api/v1/feed?kind=for_you&limit=1").json()
    serve_id = feed["results"][0]["serve_id"]
    served_post = feed["results"][0]["post"]["id"]
    for_you_cursor = parse_qs(urlsplit(feed["next"]).query)["cursor"][0]
    admin = APIClient()
    admin.force_login(staff)
    # Rights: alice's holder with a licensed character (with a reference text, so the check
    # tries the worker's semantic answer) and three claims on her post's video.
    from rights.catalogue import AssetMatch, asset_create, holder_create
    from rights.claims import claim_transition, claims_record

    holder = holder_create(name="Outage Studios", members=[alice])
    terms = {"policy": "licensed", "share_bps": 500, "description": "a tall knight of glass"}
    assets = [
        asset_create(holder=holder, actor=alice, data={"name": f"Glass Knight {i}", **terms})
        for i in range(3)
    ]
    # The disputed one on her draft: a dispute on her post would hold its revenue, and the
    # sweep's payout needs that revenue available.
    claims = [
        claims_record(
            video_id=video_id, owner=alice, matches=[AssetMatch(a, "alias", a.name, "prompt")]
        )[0]
        for a, video_id in zip(
            assets, [alices_post.video_id, draft.pk, alices_post.video_id], strict=True
        )
    ]
    claim_transition(claim=claims[1], to="disputed", actor=alice, reason="mine")
    # Moderation: frank's post, a ticket on it, labels to appeal and appeals to decide.
    from moderation.services import appeal_create, event_record, report_create

    mod_post = make_post(frank, caption="frank's")
    held_video = make_video_row(frank, state="held")
    labels = [
        event_record(
            actor=staff,
            subject_type="post",
            subject_id=str(mod_post.pk),
            type="label",
            label=f"l{i}",
        )[0]
        for i in range(3)
    ]
    # After the labels (an action closes the tickets open at the time).
    ticket = report_create(
        reporter=carol, subject_type="post", subject_id=str(mod_post.pk), reason="spam"
    )[0].ticket
    appeals = [appeal_create(user=frank, event_id=e.public_id, text="no") for e in labels[1:]]
    # Webhooks: an endpoint with a failed delivery to redeliver, and one to delete.
    from generation.models import WebhookDelivery, WebhookEndpoint
    from generation.webhooks.signing import secret_generate

    hook, old_hook = (
        WebhookEndpoint.objects.create(
            user=alice, url=url, events=["video.failed"], secret=secret_generate()
        )
        for url in ("https://hooks.example/riff", "https://hooks.example/old")
    )
    hook_delivery = WebhookDelivery.objects.create(
        endpoint=hook, event_id="evt_outage", event_type="video.failed", payload={}, state="failed"
    )
    return {
        "hook": hook,
        "old_hook": old_hook,
        "hook_delivery": hook_delivery,
        "frank_api": client_for(frank),
        "mod_post": mod_post,
        "held_video": held_video,
        "ticket": ticket,
        "labels": labels,
        "appeals": appeals,
        "holder": holder,
        "asset": assets[0],
        "claims": claims,
        "alice": alice,
        "api": api,
        "spare_token_api": client_for(alice),
        "staff_api": client_for(staff),
        "doomed_api": client_for(doomed),
        "leaver_api": client_for(leaver),
        "anon": APIClient(),
        "admin": admin,
        "cameo": cameo,
        "approve": approve,
        "deny": deny,
        "to_revoke": to_revoke,
        "to_record": to_record,
        "bobs_post": bobs_post,
        "alices_post": alices_post,
        "to_delete": to_delete,
        "draft": draft,
        "appearance": appearance,
        "queued": queued,
        "api_key": api_key,
        "integrator": integrator,
        "serve_id": serve_id,
        "served_post": served_post,
        "for_you_cursor": for_you_cursor,
        "avatar_url": avatar.json()["avatar_url"],
    }


def _calls(w: dict[str, Any]) -> list[Call]:
    api, cameo, bob_post, mine = w["api"], w["cameo"], w["bobs_post"], w["alices_post"]
    h, claims = w["holder"].pk, w["claims"]
    c, p, v = f"/api/v1/cameos/{cameo.pk}", f"/api/v1/posts/{bob_post.pk}", w["draft"]
    mp4 = make_video(2.5)

    def upload(name: str, content: bytes, kind: str) -> SimpleUploadedFile:
        return SimpleUploadedFile(name, content, content_type=kind)

    A = "/api/v1"
    return [
        # infrastructure: liveness never touches Redis, readiness reports it
        Call("GET", "healthz", "/healthz", w["anon"], expect="2xx"),
        Call("GET", "readyz", "/readyz", w["anon"], expect="2xx"),
        Call("GET", "metrics", "/metrics", w["anon"], expect="2xx"),
        Call("GET", "api/schema/", "/api/schema/", w["anon"], expect="2xx"),
        Call("GET", "api/docs/", "/api/docs/", w["anon"], expect="2xx"),
        Call("GET", "api/redoc/", "/api/redoc/", w["anon"], expect="2xx"),
        # The Videos API (API key; its rate limit fails open like every throttle).
        Call("GET", "v1/", "/v1/videos", w["integrator"], expect="2xx"),
        Call("GET", "media", w["avatar_url"], w["anon"], expect="2xx"),
        Call("GET", "admin/login/", "/admin/login/", w["anon"], expect="2xx"),
        Call(
            "POST",
            "admin/login/",
            "/admin/login/",
            w["anon"],
            data={"username": "staffer", "password": "wrong"},
            format="multipart",
            expect="2xx",
        ),
        Call("GET", "admin/", "/admin/", w["admin"], expect="2xx"),
        Call("GET", "console/", "/console/", w["admin"], expect="2xx"),
        # accounts
        Call("GET", f"{A}/me", f"{A}/me", api, expect="2xx"),
        Call("PATCH", f"{A}/me", f"{A}/me", api, {"bio": "still here"}, expect="2xx"),
        Call(
            "PUT",
            f"{A}/me/avatar",
            f"{A}/me/avatar",
            api,
            {"image": upload("b.png", png_bytes(color=(0, 90, 200)), "image/png")},
            format="multipart",
            expect="2xx",
        ),
        Call("GET", f"{A}/me/invites", f"{A}/me/invites", api, expect="2xx"),
        Call("POST", f"{A}/me/invites", f"{A}/me/invites", api, expect="2xx"),
        # API keys live in PostgreSQL only
        Call("GET", f"{A}/me/api-keys", f"{A}/me/api-keys", api, expect="2xx"),
        Call("POST", f"{A}/me/api-keys", f"{A}/me/api-keys", api, {"name": "ci"}, expect="2xx"),
        Call(
            "DELETE",
            f"{A}/me/api-keys/{{key_id}}",
            f"{A}/me/api-keys/{w['api_key'].pk}",
            api,
            expect="2xx",
        ),
        Call("GET", f"{A}/notifications", f"{A}/notifications", api, expect="2xx"),
        Call("POST", f"{A}/notifications/read", f"{A}/notifications/read", api, {}, expect="2xx"),
        Call("GET", f"{A}/users/{{username}}", f"{A}/users/bob", api, expect="2xx"),
        Call(
            "POST", f"{A}/users/{{username}}/follow", f"{A}/users/carol/follow", api, expect="2xx"
        ),
        Call(
            "DELETE", f"{A}/users/{{username}}/follow", f"{A}/users/carol/follow", api, expect="2xx"
        ),
        Call("POST", f"{A}/users/{{username}}/block", f"{A}/users/gina/block", api, expect="2xx"),
        Call("DELETE", f"{A}/users/{{username}}/block", f"{A}/users/gina/block", api, expect="2xx"),
        Call(
            "GET",
            f"{A}/users/{{username}}/followers",
            f"{A}/users/bob/followers",
            api,
            expect="2xx",
        ),
        Call(
            "GET",
            f"{A}/users/{{username}}/following",
            f"{A}/users/bob/following",
            api,
            expect="2xx",
        ),
        Call("GET", f"{A}/users/{{username}}/posts", f"{A}/users/bob/posts", api, expect="2xx"),
        Call(
            "POST",
            f"{A}/auth/login",
            f"{A}/auth/login",
            w["anon"],
            {"username": "alice", "password": PASSWORD},
            expect="2xx",
        ),
        Call(
            "POST",
            f"{A}/auth/register",
            f"{A}/auth/register",
            w["anon"],
            {
                "username": "newcomer",
                "email": "newcomer@example.com",
                "password": "a long secret pass",
                "invite_code": invite_mint(created_by=None).code,
                "birth_date": "1990-02-03",
            },
            expect="2xx",
        ),
        Call("POST", f"{A}/realtime/ticket", f"{A}/realtime/ticket", api, expect="503"),
        # cameos
        Call("GET", f"{A}/cameos", f"{A}/cameos", api, expect="2xx"),
        Call(
            "POST",
            f"{A}/cameos",
            f"{A}/cameos",
            api,
            {"kind": "pet", "display_name": "Rex"},
            expect="2xx",
        ),
        Call("GET", f"{A}/cameos/{{cameo_id}}", c, api, expect="2xx"),
        Call("PATCH", f"{A}/cameos/{{cameo_id}}", c, api, {"instructions": "waves"}, expect="2xx"),
        Call(
            "GET",
            f"{A}/cameos/{{cameo_id}}/access-requests",
            f"{c}/access-requests",
            api,
            expect="2xx",
        ),
        Call(
            "POST",
            f"{A}/cameos/{{cameo_id}}/access-requests",
            f"{c}/access-requests",
            client_for(w["bobs_post"].author),
            {"message": "may I?"},
            expect="2xx",
        ),
        Call(
            "POST",
            f"{A}/cameos/{{cameo_id}}/access-requests/{{request_id}}/approve",
            f"{c}/access-requests/{w['approve'].pk}/approve",
            api,
            expect="2xx",
        ),
        Call(
            "POST",
            f"{A}/cameos/{{cameo_id}}/access-requests/{{request_id}}/deny",
            f"{c}/access-requests/{w['deny'].pk}/deny",
            api,
            expect="2xx",
        ),
        Call("GET", f"{A}/cameos/{{cameo_id}}/grants", f"{c}/grants", api, expect="2xx"),
        Call(
            "POST",
            f"{A}/cameos/{{cameo_id}}/grants",
            f"{c}/grants",
            api,
            {"username": "carol"},
            expect="2xx",
        ),
        Call(
            "DELETE",
            f"{A}/cameos/{{cameo_id}}/grants/{{username}}",
            f"{c}/grants/dave",
            api,
            expect="2xx",
        ),
        Call("GET", f"{A}/cameos/{{cameo_id}}/appearances", f"{c}/appearances", api, expect="2xx"),
        Call(
            "DELETE",
            f"{A}/cameos/{{cameo_id}}/appearances/{{video_id}}",
            f"{c}/appearances/{w['appearance'].pk}",
            api,
            expect="2xx",
        ),
        # This one, POST /posts and PUT /feed/preferences queue a task after their write
        # commits; the write stands and a beat sweeper re-sends the lost message.
        Call(
            "PUT",
            f"{A}/cameos/{{cameo_id}}/recording",
            f"{A}/cameos/{w['to_record'].pk}/recording",
            api,
            {"video": upload("me.mp4", mp4, "video/mp4")},
            format="multipart",
            expect="2xx",
        ),
        Call(
            "DELETE",
            f"{A}/cameos/{{cameo_id}}",
            f"{A}/cameos/{w['to_revoke'].pk}",
            api,
            expect="2xx",
        ),
        # generation and videos
        Call("GET", f"{A}/generations", f"{A}/generations", api, expect="2xx"),
        Call(
            "POST",
            f"{A}/generations",
            f"{A}/generations",
            api,
            {"prompt": "a red ball bounces", "seed": 5},
            expect="2xx",
        ),
        Call(
            "GET",
            f"{A}/generations/{{generation_id}}",
            f"{A}/generations/{w['queued'].pk}",
            api,
            expect="2xx",
        ),
        Call(
            "POST",
            f"{A}/generations/{{generation_id}}/cancel",
            f"{A}/generations/{w['queued'].pk}/cancel",
            api,
            expect="2xx",
        ),
        Call("GET", f"{A}/drafts", f"{A}/drafts", api, expect="2xx"),
        Call("GET", f"{A}/videos/{{video_id}}", f"{A}/videos/{v.pk}", api, expect="2xx"),
        Call(
            "GET",
            f"{A}/videos/{{video_id}}/content",
            f"{A}/videos/{v.pk}/content",
            api,
            expect="2xx",
        ),
        Call(
            "POST",
            f"{A}/provenance/verify",
            f"{A}/provenance/verify",
            api,
            {"file": upload("clip.mp4", mp4, "video/mp4")},
            format="multipart",
            expect="2xx",
        ),
        # webhooks: the database only; a redelivery's lost message is the sweep's to send
        Call("GET", f"{A}/me/webhooks", f"{A}/me/webhooks", api, expect="2xx"),
        Call(
            "POST",
            f"{A}/me/webhooks",
            f"{A}/me/webhooks",
            api,
            {"url": "https://8.8.8.8/riff", "events": ["video.failed"]},
            expect="2xx",
        ),
        Call(
            "POST",
            f"{A}/me/webhooks/{{webhook_id}}/rotate",
            f"{A}/me/webhooks/{w['hook'].pk}/rotate",
            api,
            expect="2xx",
        ),
        Call(
            "GET",
            f"{A}/me/webhooks/{{webhook_id}}/deliveries",
            f"{A}/me/webhooks/{w['hook'].pk}/deliveries",
            api,
            expect="2xx",
        ),
        Call(
            "POST",
            f"{A}/me/webhooks/{{webhook_id}}/deliveries/{{delivery_id}}/redeliver",
            f"{A}/me/webhooks/{w['hook'].pk}/deliveries/{w['hook_delivery'].pk}/redeliver",
            api,
            expect="2xx",
        ),
        Call(
            "DELETE",
            f"{A}/me/webhooks/{{webhook_id}}",
            f"{A}/me/webhooks/{w['old_hook'].pk}",
            api,
            expect="2xx",
        ),
        # posts, feed, remix
        Call(
            "POST",
            f"{A}/posts",
            f"{A}/posts",
            api,
            {"video_id": str(v.pk), "caption": "hi"},
            expect="2xx",
        ),
        Call("GET", f"{A}/posts/{{post_id}}", p, api, expect="2xx"),
        Call("GET", f"{A}/posts/{{post_id}}/comments", f"{p}/comments", api, expect="2xx"),
        Call(
            "POST",
            f"{A}/posts/{{post_id}}/comments",
            f"{p}/comments",
            api,
            {"body": "nice"},
            expect="2xx",
        ),
        Call("POST", f"{A}/posts/{{post_id}}/like", f"{p}/like", api, expect="2xx"),
        Call("DELETE", f"{A}/posts/{{post_id}}/like", f"{p}/like", api, expect="2xx"),
        Call("GET", f"{A}/posts/{{post_id}}/lineage", f"{p}/lineage", api, expect="2xx"),
        Call(
            "GET",
            f"{A}/posts/{{post_id}}/remixes",
            f"{A}/posts/{mine.pk}/remixes",
            api,
            expect="2xx",
        ),
        Call("GET", f"{A}/posts/{{post_id}}/tree", f"{p}/tree", api, expect="2xx"),
        Call(
            "POST",
            f"{A}/posts/{{post_id}}/remix",
            f"{p}/remix",
            api,
            {"prompt": "the same, but blue", "seed": 6},
            expect="2xx",
        ),
        Call(
            "DELETE", f"{A}/posts/{{post_id}}", f"{A}/posts/{w['to_delete'].pk}", api, expect="2xx"
        ),
        Call("GET", f"{A}/feed", f"{A}/feed", api, params={"kind": "following"}, expect="2xx"),
        Call("GET", f"{A}/feed", f"{A}/feed", api, params={"kind": "latest"}, expect="2xx"),
        Call("GET", f"{A}/feed", f"{A}/feed", api, params={"kind": "for_you"}, expect="2xx"),
        Call(
            "GET",
            f"{A}/feed",
            f"{A}/feed",
            api,
            params={"kind": "for_you", "cursor": w["for_you_cursor"]},
            expect="503",
        ),
        Call(
            "POST",
            f"{A}/feed/events",
            f"{A}/feed/events",
            api,
            [{"post_id": w["served_post"], "serve_id": w["serve_id"], "event": "impression"}],
            expect="2xx",
        ),
        Call("GET", f"{A}/feed/preferences", f"{A}/feed/preferences", api, expect="2xx"),
        Call(
            "PUT",
            f"{A}/feed/preferences",
            f"{A}/feed/preferences",
            api,
            {"steer": "more cats"},
            expect="2xx",
        ),
        Call("GET", f"{A}/metrics/creation", f"{A}/metrics/creation", w["staff_api"], expect="2xx"),
        # revenue: an event pays alice (the creator) first, so her payout has money to move
        Call(
            "POST",
            f"{A}/revenue/events",
            f"{A}/revenue/events",
            w["staff_api"],
            {
                "source": "ads",
                "post_id": str(w["alices_post"].pk),
                "amount_micros": 1_000_000,
                "currency": "USD",
            },
            expect="2xx",
            headers={"Idempotency-Key": "outage-revenue-1"},
        ),
        Call("GET", f"{A}/me/earnings", f"{A}/me/earnings", api, expect="2xx"),
        Call(
            "POST",
            f"{A}/me/payouts",
            f"{A}/me/payouts",
            api,
            {"amount_micros": 1, "currency": "USD"},
            expect="2xx",
        ),
        Call("GET", f"{A}/me/payouts", f"{A}/me/payouts", api, expect="2xx"),
        Call(
            "POST",
            f"{A}/credits/grants",
            f"{A}/credits/grants",
            w["staff_api"],
            {"username": w["alice"].username, "credits": 1},
            expect="2xx",
        ),
        Call("GET", f"{A}/me/credits", f"{A}/me/credits", api, expect="2xx"),
        Call(
            "GET",
            f"{A}/revenue/trial-balance",
            f"{A}/revenue/trial-balance",
            w["staff_api"],
            expect="2xx",
        ),
        # rights: the catalogue reads the database only; the check falls back to aliases
        Call(
            "POST",
            f"{A}/rights/holders",
            f"{A}/rights/holders",
            w["staff_api"],
            {"name": "Outage Press", "members": ["bob"]},
            expect="2xx",
        ),
        Call(
            "GET", f"{A}/rights/holders/{{holder_id}}", f"{A}/rights/holders/{h}", api, expect="2xx"
        ),
        Call(
            "POST",
            f"{A}/rights/holders/{{holder_id}}/members",
            f"{A}/rights/holders/{h}/members",
            api,
            {"username": "carol"},
            expect="2xx",
        ),
        Call(
            "DELETE",
            f"{A}/rights/holders/{{holder_id}}/members/{{username}}",
            f"{A}/rights/holders/{h}/members/carol",
            api,
            expect="2xx",
        ),
        Call(
            "GET",
            f"{A}/rights/holders/{{holder_id}}/claims",
            f"{A}/rights/holders/{h}/claims",
            api,
            expect="2xx",
        ),
        Call(
            "GET",
            f"{A}/rights/holders/{{holder_id}}/statement",
            f"{A}/rights/holders/{h}/statement",
            api,
            expect="2xx",
        ),
        Call("GET", f"{A}/rights/assets", f"{A}/rights/assets", w["anon"], expect="2xx"),
        Call(
            "GET",
            f"{A}/rights/assets/{{asset_id}}",
            f"{A}/rights/assets/{w['asset'].pk}",
            w["anon"],
            expect="2xx",
        ),
        Call(
            "POST",
            f"{A}/rights/assets",
            f"{A}/rights/assets",
            api,
            {"holder_id": str(h), "name": "Tin Owl", "policy": "blocked"},
            expect="2xx",
        ),
        Call(
            "PATCH",
            f"{A}/rights/assets/{{asset_id}}",
            f"{A}/rights/assets/{w['asset'].pk}",
            api,
            {"share_bps": 600},
            expect="2xx",
        ),
        Call(
            "GET",
            f"{A}/rights/check",
            f"{A}/rights/check",
            api,
            params={"prompt": "Tin Owl and a glass knight"},
            expect="2xx",
        ),
        Call(
            "GET",
            f"{A}/videos/{{video_id}}/claims",
            f"{A}/videos/{mine.video_id}/claims",
            api,
            expect="2xx",
        ),
        Call(
            "POST",
            f"{A}/claims/{{claim_id}}/dispute",
            f"{A}/claims/{claims[0].pk}/dispute",
            api,
            {"reason": "mine"},
            expect="2xx",
        ),
        Call(
            "POST",
            f"{A}/claims/{{claim_id}}/uphold",
            f"{A}/claims/{claims[1].pk}/uphold",
            api,
            expect="2xx",
        ),
        Call(
            "POST",
            f"{A}/claims/{{claim_id}}/release",
            f"{A}/claims/{claims[2].pk}/release",
            api,
            expect="2xx",
        ),
        # moderation: the database only; notifications push best-effort
        Call(
            "POST",
            f"{A}/reports",
            f"{A}/reports",
            api,
            {"subject_type": "post", "subject_id": str(w["mod_post"].pk), "reason": "hate"},
            expect="2xx",
        ),
        Call("GET", f"{A}/me/reports", f"{A}/me/reports", api, expect="2xx"),
        Call(
            "GET",
            f"{A}/moderation/reports",
            f"{A}/moderation/reports",
            w["staff_api"],
            expect="2xx",
        ),
        Call(
            "POST",
            f"{A}/moderation/reports/{{ticket_id}}/assign",
            f"{A}/moderation/reports/{w['ticket'].pk}/assign",
            w["staff_api"],
            {},
            expect="2xx",
        ),
        Call(
            "GET",
            f"{A}/moderation/subjects/{{subject_type}}/{{subject_id}}",
            f"{A}/moderation/subjects/post/{w['mod_post'].pk}",
            w["staff_api"],
            expect="2xx",
        ),
        Call(
            "POST",
            f"{A}/appeals",
            f"{A}/appeals",
            w["frank_api"],
            {"event_id": str(w["labels"][0].public_id), "text": "it is art"},
            expect="2xx",
        ),
        Call(
            "GET",
            f"{A}/moderation/appeals",
            f"{A}/moderation/appeals",
            w["staff_api"],
            expect="2xx",
        ),
        Call(
            "POST",
            f"{A}/moderation/appeals/{{appeal_id}}/approve",
            f"{A}/moderation/appeals/{w['appeals'][0].pk}/approve",
            w["staff_api"],
            {},
            expect="2xx",
        ),
        Call(
            "POST",
            f"{A}/moderation/appeals/{{appeal_id}}/reject",
            f"{A}/moderation/appeals/{w['appeals'][1].pk}/reject",
            w["staff_api"],
            {},
            expect="2xx",
        ),
        Call(
            "POST",
            f"{A}/moderation/videos/{{video_id}}/release",
            f"{A}/moderation/videos/{w['held_video'].pk}/release",
            w["staff_api"],
            {"reason": "a test pattern"},
            expect="2xx",
        ),
        Call(
            "POST",
            f"{A}/moderation/events",
            f"{A}/moderation/events",
            w["staff_api"],
            {
                "subject_type": "post",
                "subject_id": str(w["mod_post"].pk),
                "type": "takedown",
                "reason": "spam ring",
            },
            expect="2xx",
        ),
        # last: the ones that end sessions and accounts
        Call("POST", f"{A}/auth/logout", f"{A}/auth/logout", w["spare_token_api"], expect="2xx"),
        Call("POST", f"{A}/auth/logout-all", f"{A}/auth/logout-all", w["leaver_api"], expect="2xx"),
        Call("DELETE", f"{A}/me", f"{A}/me", w["doomed_api"], expect="2xx"),
    ]


@pytest.fixture
def gpu_worker(transactional_db):
    """A real Celery worker thread on the `gpu` queue (generation runs there, whole), on
    whatever broker the app points at when it starts."""

    def close_thread_connections(**_):
        connections.close_all()

    task_postrun.connect(close_thread_connections, weak=False)
    started: list = []

    def start():
        context = start_worker(
            celery_app,
            pool="solo",
            concurrency=1,
            perform_ping_check=False,
            queues=["gpu"],
            shutdown_timeout=20,
        )
        context.__enter__()
        started.append(context)

    yield start
    for context in started:
        context.__exit__(None, None, None)
    task_postrun.disconnect(close_thread_connections)


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_every_endpoint_survives_a_redis_outage_and_queued_jobs_finish_after(
    spare_redis, point_app_at, gpu_worker, settings, make_video_row, make_post, active_cameo
):
    point_app_at(spare_redis.url)
    gpu_worker()
    world = _world(make_video_row, make_post, active_cameo)
    calls = _calls(world)

    # Every operation of the schema, and every top-level route, is in the sweep.
    covered = {(call.method, call.path) for call in calls}
    missing = _schema_operations() - covered
    assert not missing, f"add these to the outage sweep: {sorted(missing)}"
    assert not _routes_not_swept([call.url for call in calls])

    spare_redis.stop()
    outcomes: dict[str, tuple[int, str, float]] = {}
    for call in calls:
        started = time.monotonic()
        response = call.send()
        took = time.monotonic() - started
        key = f"{call.method} {call.url} {call.params or ''}".strip()
        outcomes[key] = (response.status_code, call.expect, took)
        if response.status_code == 503 and call.url.startswith("/api/v1/"):
            assert_unavailable(response)
    wrong = {
        key: (status, expect, f"{took:.1f}s")
        for key, (status, expect, took) in outcomes.items()
        if _outcome_of(status) not in expect.split(" or ") or took > 3
    }
    assert not wrong, wrong

    # Redis is back: the jobs accepted during the outage were never sent; the sweeper sends
    # them and the worker (reconnected on its own) runs them to the end.
    outage_jobs = list(
        Generation.objects.filter(dispatched_at__isnull=True, status=GenerationStatus.QUEUED)
    )
    assert len(outage_jobs) == 2  # the generation and the remix
    spare_redis.start()
    settings.RIFF_DISPATCH_RESEND_AFTER = 0
    assert generation_reap()["resent"] == 2

    def finished() -> bool:
        states = Generation.objects.filter(pk__in=[j.pk for j in outage_jobs])
        return all(s == GenerationStatus.SUCCEEDED for s in states.values_list("status", flat=True))

    assert wait_for(finished, 60), list(
        Generation.objects.filter(pk__in=[j.pk for j in outage_jobs]).values(
            "status", "error_code", "error_message"
        )
    )
    # And what needed Redis works again.
    assert world["api"].post("/api/v1/realtime/ticket").status_code == 201
    assert world["anon"].get("/readyz").status_code == 200


def _outcome_of(status: int) -> str:
    return "2xx" if 200 <= status < 300 else str(status)


@pytest.mark.integration
def test_a_frozen_redis_costs_seconds_not_a_hang(
    api, other, make_post, spare_redis, point_app_at, django_capture_on_commit_callbacks
):
    point_app_at(spare_redis.url)
    make_post(other)
    assert api.get("/api/v1/me").status_code == 200  # connections made while it answered
    spare_redis.freeze()
    try:
        for method, url, data, expected in [
            ("get", "/api/v1/me", None, 200),
            # after commit: the broker publish (generation) and the websocket push (follow)
            ("post", "/api/v1/generations", {"prompt": "a slow day"}, 202),
            ("post", f"/api/v1/users/{other.username}/follow", None, 204),
            ("get", "/api/v1/feed?kind=for_you", None, 200),
            ("post", "/api/v1/realtime/ticket", None, 503),
            ("get", "/readyz", None, 200),
        ]:
            started = time.monotonic()
            with django_capture_on_commit_callbacks(execute=True):
                response = api.get(url) if method == "get" else api.post(url, data, format="json")
            took = time.monotonic() - started
            assert response.status_code == expected, (url, response.status_code, response.content)
            # Two seconds per Redis call on the way (throttle, snapshot, broker...), no more.
            assert took < 7, (url, took)
    finally:
        spare_redis.thaw()

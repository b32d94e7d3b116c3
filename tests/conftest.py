"""Shared fixtures. Tests run against real PostgreSQL and Redis (database 15)."""

from __future__ import annotations

import asyncio
import asyncio.runners
import io
import socket
import threading
import time
from datetime import date

import pytest
from django.core.cache import cache
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from rest_framework.test import APIClient

from accounts import authcache
from cameos.models import Audience, Cameo, CameoStatus
from cameos.services import cameo_create
from config.core import redis as redis_module
from config.core import stamps
from feed import postcache
from generation.models import Appearance, Generation, GenerationCameo, GenerationStatus, Video
from tests.factories import UserFactory, token_for

# An event loop closing at the end of an async test cancels what the test left running (a
# websocket consumer it never disconnected) and waits for it. With redis-py 8, a consumer's
# channel-layer receive sometimes never finishes cancelling, and the run hung there for good
# (tests/accounts/test_realtime.py, about one run in three on a 2-core box). Wait a bounded
# time instead; what is still running then is dropped with its loop.
LOOP_CLOSE_GRACE_SECONDS = 5


def _cancel_all_tasks_within_grace(loop) -> None:
    pending = asyncio.all_tasks(loop)
    if not pending:
        return
    for task in pending:
        task.cancel()
    loop.run_until_complete(asyncio.wait(pending, timeout=LOOP_CLOSE_GRACE_SECONDS))


asyncio.runners._cancel_all_tasks = _cancel_all_tasks_within_grace


@pytest.fixture(autouse=True)
def _clean_redis():
    # Database 15 belongs to the tests alone (config.settings), so flushing it is safe.
    cache._cache.get_client(write=True).flushdb()
    # With the stamps gone every cached token would be re-read anyway; forget them outright.
    authcache.forget_all()
    postcache.forget_all()
    stamps.forget_pending()
    # An outage an earlier test staged is over: optional writes are not skipped for it.
    redis_module._last_degraded = float("-inf")
    yield


@pytest.fixture
def redis_sends(monkeypatch) -> list[int]:
    """Counts this process's Redis round trips from here on: one entry per send (a command or
    a whole pipeline)."""
    import redis.connection

    sent: list[int] = []
    real = redis.connection.AbstractConnection.send_packed_command

    def counted(self, *args, **kwargs):
        sent.append(1)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(redis.connection.AbstractConnection, "send_packed_command", counted)
    # config.core.redis's own connections (commands_run) send here.
    from config.core import redis as riff_redis

    raw = riff_redis._send

    def counted_raw(link, packed):
        sent.append(1)
        return raw(link, packed)

    monkeypatch.setattr(riff_redis, "_send", counted_raw)
    return sent


@pytest.fixture(autouse=True)
def _media_root(tmp_path, settings):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp_path / "media"), "base_url": "/media/"},
        },
    }
    yield


@pytest.fixture
def anon():
    return APIClient()


@pytest.fixture
def make_user(db):
    def make(**kwargs):
        return UserFactory(**kwargs)

    return make


@pytest.fixture
def user(make_user):
    return make_user(username="alice")


@pytest.fixture
def other(make_user):
    return make_user(username="bob")


def client_for(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token_for(user)}")
    client.user = user
    return client


@pytest.fixture
def client_of():
    return client_for


@pytest.fixture
def api(user):
    return client_for(user)


@pytest.fixture
def teen_birth_date():
    today = date.today()
    return date(today.year - 15, 1, 1)


def png_bytes(size=(64, 48), color=(200, 30, 30), fmt="PNG", **save) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, format=fmt, **save)
    return out.getvalue()


@pytest.fixture
def active_cameo(db):
    def make(owner, *, audience=Audience.APPROVED, kind="object", handle=None):
        cameo = cameo_create(owner=owner, kind=kind, display_name="thing", handle=handle)
        Cameo.objects.filter(pk=cameo.pk).update(status=CameoStatus.ACTIVE, audience=audience)
        cameo.refresh_from_db()
        return cameo

    return make


@pytest.fixture
def make_video_row(db):
    """A finished generation with a stored (tiny) video, for visibility tests that don't need
    the engine. Whole-pipeline tests make real ones."""

    def make(owner, *, cameos=(), state="draft", prompt="p", remix_of=None):
        job = Generation.objects.create(
            owner=owner,
            prompt=prompt,
            seed=1,
            status=GenerationStatus.SUCCEEDED,
            remix_of_id=getattr(remix_of, "pk", remix_of),
        )
        names = {
            "content": default_storage.save(
                f"videos/t/{job.pk}.mp4", ContentFile(b"\0\0\0\x18ftypmp42")
            ),
            "poster": default_storage.save(f"videos/t/{job.pk}.jpg", ContentFile(b"jpg")),
            "preview": default_storage.save(f"videos/t/{job.pk}.webp", ContentFile(b"webp")),
        }
        video = Video.objects.create(
            owner=owner,
            generation=job,
            state=state,
            seconds=2,
            width=512,
            height=512,
            frame_count=16,
            sha256="0" * 64,
            **names,
        )
        for cameo in cameos:
            GenerationCameo.objects.create(generation=job, cameo=cameo, instructions_version=1)
            Appearance.objects.create(video=video, cameo=cameo, instructions_version=1)
        return video

    return make


@pytest.fixture
def make_post(make_video_row):
    """Publishes a draft through feed.services.post_publish (lineage, counters, fan-out)."""
    from feed.services import post_publish

    def make(author, *, caption="", allow_remix=True, remix_of=None, cameos=(), prompt="p"):
        video = make_video_row(author, cameos=cameos, prompt=prompt, remix_of=remix_of)
        post, _ = post_publish(
            user=author, video_id=video.pk, caption=caption, allow_remix=allow_remix
        )
        return post

    return make


@pytest.fixture
def uvicorn_server():
    """The ASGI app under uvicorn in a thread, on a free loopback port."""
    import uvicorn

    from config.asgi import application

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(application, lifespan="off", log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    server.should_exit = True
    thread.join(20)
    sock.close()


@pytest.fixture
def receiver():
    """Makes webhook receivers (tests.webhook_receiver.Receiver) and closes them afterwards."""
    from tests.webhook_receiver import Receiver

    made: list[Receiver] = []

    def make(*args, **kwargs) -> Receiver:
        made.append(Receiver(*args, **kwargs))
        return made[-1]

    yield make
    for server in made:
        server.close()

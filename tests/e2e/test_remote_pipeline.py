"""A job for the "remote" engine, end to end: the outer job is routed to its own queue
(`gpu.remote`), a worker that consumes only that queue runs it with the remote backend, which
sends it to a Riff on loopback (uvicorn, the Videos API, a second user's API key), whose own
worker (`gpu`, `media`, `default`) renders the inner job with the tiny riff-world engine.

Both Riffs are this one process and database: what the two workers did is told apart by the
thread and queue each task ran on, and the two jobs by their owners.
"""

from __future__ import annotations

import io
import threading
import time

import av
import httpx
import pytest
from asgiref.sync import sync_to_async
from celery.contrib.testing.worker import start_worker, test_worker_started
from celery.signals import task_postrun, task_prerun
from channels.testing import WebsocketCommunicator
from django.db import connections

from accounts.apikeys import api_key_create
from config.asgi import application
from config.celery import app as celery_app
from generation.engine.backends import register_engine
from generation.models import Generation, GenerationStatus, Video
from tests.factories import UserFactory, token_for
from tests.helpers import generation_events

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

REMOTE_FPS = 16
LOCAL_HOST, REMOTE_HOST = "riff-local@e2e", "riff-remote@e2e"


@pytest.fixture
def fleet(uvicorn_server, settings, transactional_db):
    """Settings for a `remote-riff` engine on its own queue, the two users (alice makes the
    job; `remote_worker`'s key is the engine's at the loopback Riff), and two worker threads.
    Yields what it knows; `runs` records each generation task: id -> worker, queue, result."""
    settings.RIFF_GENERATION_QUEUES = {"remote-riff": "gpu.remote"}
    settings.RIFF_VIDEO_MODELS = [*settings.RIFF_VIDEO_MODELS, "remote-riff"]
    alice = UserFactory(username="alice")
    remote_user = UserFactory(username="remote_worker")
    _key, engine_key = api_key_create(user=remote_user, name="remote engine")
    _key, alice_key = api_key_create(user=alice, name="alice's app")
    register_engine(
        "remote-riff",
        "remote",
        base_url=f"{uvicorn_server}/v1",
        api_key=engine_key,
        fps=REMOTE_FPS,
        poll_interval=0.1,
        timeout=120,
    )
    runs: dict[str, dict] = {}
    # Which worker a task ran on: its thread (the solo pool runs tasks in the worker's own
    # thread; Celery's `request.hostname` is one per process, not per embedded worker).
    threads: dict[int, str] = {}

    def ready(worker=None, **_):
        threads[threading.get_ident()] = worker.hostname

    def started(task=None, args=(), **_):
        if task.name == "generation.tasks.generation_run":
            runs[str(args[0])] = {
                "worker": threads.get(threading.get_ident()),
                "queue": task.request.delivery_info.get("routing_key"),
            }

    def finished(task=None, args=(), retval=None, **_):
        if task.name == "generation.tasks.generation_run":
            runs[str(args[0])]["result"] = retval
        # Runs in the worker thread: don't leave its connection open past the test database.
        connections.close_all()

    test_worker_started.connect(ready, weak=False)
    task_prerun.connect(started, weak=False)
    task_postrun.connect(finished, weak=False)
    # The remote worker starts second: a worker takes its queues when its consumer starts,
    # so each thread keeps its own although both share the app. No kombu event loop: it is
    # one per process, and a second worker would hand its messages to the first one's thread
    # (`use_eventloop=False`: each worker drains its own connection in its own thread).
    with (
        start_worker(
            celery_app,
            pool="solo",
            perform_ping_check=False,
            queues=["gpu", "media", "default"],
            hostname=LOCAL_HOST,
            use_eventloop=False,
            shutdown_timeout=20,
        ),
        start_worker(
            celery_app,
            pool="solo",
            perform_ping_check=False,
            queues=["gpu.remote"],
            hostname=REMOTE_HOST,
            use_eventloop=False,
            shutdown_timeout=20,
        ),
    ):
        yield {
            "url": uvicorn_server,
            "alice": alice,
            "alice_key": alice_key,
            "remote_user": remote_user,
            "runs": runs,
        }
    test_worker_started.disconnect(ready)
    task_prerun.disconnect(started)
    task_postrun.disconnect(finished)


def v1(fleet, method: str, path: str, **kwargs) -> httpx.Response:
    return httpx.request(
        method,
        f"{fleet['url']}/v1/{path}",
        headers={"Authorization": f"Bearer {fleet['alice_key']}"},
        timeout=60,
        **kwargs,
    )


def create_outer(fleet, **fields) -> dict:
    response = v1(
        fleet,
        "POST",
        "videos",
        json={"prompt": "a red ball bounces", "model": "remote-riff", **fields},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    # queued, or already taken by the remote worker
    assert body["model"] == "remote-riff" and body["status"] in ("queued", "in_progress")
    return body


def wait_until(check, seconds: float = 60.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"not within {seconds} s")


@pytest.mark.asyncio
@pytest.mark.usefixtures("close_sync_thread_connections")
async def test_a_remote_engine_job_runs_on_its_queue_and_is_delivered(fleet):
    token = await sync_to_async(token_for)(fleet["alice"])
    ws = WebsocketCommunicator(
        application, "/ws/", headers=[(b"authorization", f"Bearer {token}".encode())]
    )
    connected, _ = await ws.connect(timeout=10)
    assert connected
    assert (await ws.receive_json_from(timeout=10))["type"] == "hello"

    outer = await sync_to_async(create_outer)(fleet, seconds="4", size="1280x720")
    progress, final = await generation_events(ws, outer["id"])
    await ws.disconnect()
    assert final["type"] == "generation.succeeded", final
    # The remote's polls are the outer job's heartbeat: its progress, in order.
    assert len(progress) >= 2 and progress == sorted(progress) and progress[-1] < 1.0

    @sync_to_async
    def jobs():
        outer_job = Generation.objects.get(pk=outer["id"])
        (inner_job,) = Generation.objects.filter(owner=fleet["remote_user"])
        return outer_job, inner_job, Video.objects.get(generation=outer_job)

    outer_job, inner_job, video = await jobs()
    assert (outer_job.status, outer_job.model, outer_job.owner_id) == (
        GenerationStatus.SUCCEEDED,
        "remote-riff",
        fleet["alice"].pk,
    )
    # The inner job: the loopback Riff's default engine, 4 s at the outer job's size.
    assert (inner_job.status, inner_job.model, inner_job.seconds, inner_job.size) == (
        GenerationStatus.SUCCEEDED,
        "riff-world",
        4,
        "1280x720",
    )
    runs = fleet["runs"]
    assert (runs[str(outer_job.pk)]["worker"], runs[str(outer_job.pk)]["queue"]) == (
        REMOTE_HOST,
        "gpu.remote",
    )
    assert (runs[str(inner_job.pk)]["worker"], runs[str(inner_job.pk)]["queue"]) == (
        LOCAL_HOST,
        "gpu",
    )
    assert runs[str(outer_job.pk)]["result"] == runs[str(inner_job.pk)]["result"] == "succeeded"

    response = await sync_to_async(v1)(fleet, "GET", f"videos/{outer['id']}/content")
    assert response.status_code == 200 and response.headers["content-type"] == "video/mp4"
    with av.open(io.BytesIO(response.content)) as container:
        stream = container.streams.video[0]
        frames = [frame for frame in container.decode(stream)]
        rate = stream.average_rate
    # 4 s at the remote engine's 16 fps (the inner clip's 8 fps resampled), at the size asked.
    assert len(frames) == 64 == video.frame_count
    assert rate == REMOTE_FPS
    assert {(f.width, f.height) for f in frames} == {(1280, 720)}
    assert (video.width, video.height) == (1280, 720)


def test_cancelling_the_outer_job_cancels_the_remote_one(fleet):
    outer = create_outer(fleet, seconds="4")
    inner = wait_until(
        lambda: Generation.objects.filter(
            owner=fleet["remote_user"], status=GenerationStatus.RUNNING
        ).first()
    )
    assert Generation.objects.get(pk=outer["id"]).status == GenerationStatus.RUNNING

    cancelled = v1(fleet, "POST", f"videos/{outer['id']}/cancel")
    assert cancelled.status_code == 200
    assert (cancelled.json()["status"], cancelled.json()["error"]["code"]) == (
        "failed",
        "cancelled",
    )
    # The remote worker sees it at its next poll, cancels the inner job and stops.
    wait_until(lambda: fleet["runs"].get(outer["id"], {}).get("result"), 30)
    assert fleet["runs"][outer["id"]]["result"] == "lost"
    inner.refresh_from_db()
    assert (inner.status, inner.error_code) == (GenerationStatus.CANCELLED, "cancelled")
    wait_until(lambda: fleet["runs"].get(str(inner.pk), {}).get("result"), 30)
    assert fleet["runs"][str(inner.pk)]["result"] == "lost"
    for job_id in (outer["id"], inner.pk):
        assert Generation.objects.get(pk=job_id).status == GenerationStatus.CANCELLED
        assert not Video.objects.filter(generation_id=job_id).exists()
    assert Generation.objects.filter(owner=fleet["remote_user"]).count() == 1

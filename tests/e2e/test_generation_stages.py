"""One generation through the real pipeline (PostgreSQL, Redis, a Celery worker thread, the
engine's tiny config) watched from a websocket: the `generation.succeeded` event reaches the
client once the job is committed, and the worker's stage report (generation.timing) accounts
for the job from the claim to the event's publish, the engine already warm."""

import asyncio
import time

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator

from config.asgi import application
from generation import timing
from generation.models import Generation
from tests.e2e.test_generation_pipeline import register

pytestmark = [
    pytest.mark.integration,
    pytest.mark.django_db(transaction=True),
    pytest.mark.asyncio,
    pytest.mark.usefixtures("close_sync_thread_connections"),
]


async def test_the_event_follows_the_commit_and_the_stages_cover_the_job(celery_worker):
    reports = {}
    stop = timing.listen(lambda job_id, summary: reports.update({job_id: summary}))
    try:
        carol = await sync_to_async(register)("carol")
        ws = WebsocketCommunicator(
            application, "/ws/", headers=[(b"authorization", f"Bearer {carol.token}".encode())]
        )
        connected, _ = await ws.connect(timeout=10)
        assert connected
        assert (await ws.receive_json_from(timeout=10))["type"] == "hello"
        posted = time.time()
        response = await sync_to_async(carol.post)(
            "/api/v1/generations", {"prompt": "a blue square falls", "seed": 5}, format="json"
        )
        assert response.status_code == 202, response.content
        job_id = response.json()["id"]
        while True:
            event = await ws.receive_json_from(timeout=120)
            if event.get("generation_id") == job_id and event["type"] != "generation.progress":
                break
        received = time.time()
        await ws.disconnect()
        # The worker reports its stages right after it publishes the event (the task's
        # `finally`), so the event can reach us first: give the report a moment.
        deadline = time.monotonic() + 10
        while job_id not in reports and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
    finally:
        stop()
    assert event["type"] == "generation.succeeded" and event["status"] == "succeeded", event
    job = await sync_to_async(Generation.objects.get)(pk=job_id)
    assert job.status == "succeeded" and job.completed_at is not None
    report = reports[job_id]
    assert report["outcome"] == "succeeded"
    assert posted <= report["started"] <= report["finished"] <= received + 0.5
    stages = report["stages"]
    assert list(stages)[:3] == ["claim", "checks", "model"]
    assert stages["model"] < 0.5  # the worker built its engine when it started, not now
    assert {"sampling", "encode", "sign", "previews", "store", "finish"} <= set(stages)

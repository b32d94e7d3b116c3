"""A diffusers model as a named engine, end to end: a tiny Wan 2.1 pipeline (random weights,
the real classes; config/devtools/diffusers_models.py) saved to a folder, registered as
"wan-tiny" the way settings.RIFF_ENGINES does, and asked for by a Videos API job (`model`).
A real Celery worker samples it in segments (the second continues the first through the
image-to-video pipeline), progress reaches the owner's websocket, and the MP4 decodes to the
delivered size and length; a job cancelled mid-sampling stops between two steps and leaves
no video."""

from __future__ import annotations

import io

import av
import numpy as np
import pytest
import torch
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from rest_framework.test import APIClient

from accounts.apikeys import api_key_create
from config.asgi import application
from config.devtools import diffusers_models as tiny
from generation.engine.backends import clear_engine_cache, get_engine, register_engine
from generation.models import Generation, GenerationStatus, Video
from tests.factories import UserFactory, token_for
from tests.helpers import generation_events

pytestmark = [
    pytest.mark.integration,
    pytest.mark.django_db(transaction=True),
    pytest.mark.asyncio,
    pytest.mark.usefixtures("celery_worker", "close_sync_thread_connections"),
]

FPS = 16  # Wan's
SEGMENT = 32  # frames per engine call: a 4 s job is two calls


@pytest.fixture
def wan_tiny(tmp_path, settings):
    """Registers "wan-tiny" (diffusers, a saved tiny Wan with its image-to-video sibling) and
    lets jobs name it; afterwards the name is left with no folder and no built engine."""
    tiny.wan().save_pretrained(tmp_path / "wan")
    tiny.wan_i2v().save_pretrained(tmp_path / "wan-i2v")
    settings.RIFF_VIDEO_MODELS = [settings.RIFF_ENGINE, "wan-tiny"]

    def register(**options) -> None:
        register_engine(
            "wan-tiny",
            "diffusers",
            path=str(tmp_path / "wan"),
            i2v_path=str(tmp_path / "wan-i2v"),
            height=tiny.HEIGHT,
            width=tiny.WIDTH,
            max_frames=SEGMENT,
            **options,
        )

    yield register
    register_engine("wan-tiny", "diffusers")
    clear_engine_cache()


def forward_count(module: torch.nn.Module) -> list[int]:
    calls: list[int] = []
    module.register_forward_hook(lambda *_: calls.append(1))
    return calls


@sync_to_async
def create(user, **body) -> tuple[APIClient, dict]:
    _key, raw = api_key_create(user=user, name="e2e")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    response = client.post("/v1/videos", body, format="json")
    assert response.status_code == 200, response.json()
    return client, response.json()


async def connect(user) -> WebsocketCommunicator:
    token = await sync_to_async(token_for)(user)
    ws = WebsocketCommunicator(
        application, "/ws/", headers=[(b"authorization", f"Bearer {token}".encode())]
    )
    connected, _ = await ws.connect(timeout=10)
    assert connected
    assert (await ws.receive_json_from(timeout=10))["type"] == "hello"
    return ws


async def test_a_diffusers_job_streams_progress_and_delivers_its_mp4(wan_tiny):
    wan_tiny(steps=12)
    engine = await sync_to_async(get_engine)("wan-tiny")  # the instance the worker will use
    t2v_steps = forward_count(engine.pipeline.transformer)
    i2v_steps = forward_count(engine.i2v_pipeline.transformer)
    user = await sync_to_async(UserFactory)(username="wanda")
    ws = await connect(user)

    client, body = await create(
        user, prompt="a red ball bounces", model="wan-tiny", seconds="4", size="720x1280"
    )
    assert (body["model"], body["seconds"], body["size"]) == ("wan-tiny", "4", "720x1280")
    progress, final = await generation_events(ws, body["id"])
    await ws.disconnect()
    assert final["type"] == "generation.succeeded", final
    assert len(progress) >= 2 and progress == sorted(progress) and progress[-1] < 1.0
    assert any(0 < p <= 0.9 for p in progress)  # reported while sampling

    job = await sync_to_async(Generation.objects.get)(pk=body["id"])
    assert (job.status, job.model, job.progress) == (GenerationStatus.SUCCEEDED, "wan-tiny", 1.0)
    # two segments of 32 frames at 16 fps: the first from text, the second continuing the
    # first's last frame through the image-to-video pipeline (12 guided steps each)
    assert (len(t2v_steps), len(i2v_steps)) == (24, 24)

    content = await sync_to_async(client.get)(f"/v1/videos/{body['id']}/content")
    assert content.status_code == 200 and content["Content-Type"] == "video/mp4"
    data = b"".join(content.streaming_content)
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.video[0]
        frames = list(container.decode(stream))
        rate = stream.average_rate
    assert len(frames) == 4 * FPS and rate == FPS
    assert {(f.width, f.height) for f in frames} == {(720, 1280)}
    video = await sync_to_async(Video.objects.get)(generation_id=body["id"])
    assert (video.width, video.height, video.frame_count) == (720, 1280, 64)
    assert video.seconds == pytest.approx(4.0)


async def test_cancelling_mid_sampling_stops_between_steps_and_leaves_no_video(wan_tiny):
    steps = 400  # two segments of 800 guided passes: many seconds, were it not cancelled
    wan_tiny(steps=steps)
    engine = await sync_to_async(get_engine)("wan-tiny")
    passes = forward_count(engine.pipeline.transformer)
    user = await sync_to_async(UserFactory)(username="wanda")
    ws = await connect(user)

    client, body = await create(user, prompt="a slow red ball", model="wan-tiny", seconds="4")
    job_id = body["id"]
    while True:
        event = await ws.receive_json_from(timeout=120)
        if event.get("generation_id") == job_id and event["type"] == "generation.progress":
            break
    cancelled = await sync_to_async(client.post)(f"/v1/videos/{job_id}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "failed"
    while True:
        event = await ws.receive_json_from(timeout=30)
        if event.get("generation_id") == job_id and event["type"] == "generation.cancelled":
            break
    await ws.disconnect()

    # the worker leaves generate() (its lock) at the next step's report
    assert await sync_to_async(engine._lock.acquire)(timeout=30)
    engine._lock.release()
    stopped_at = len(passes)
    assert 0 < stopped_at < steps  # well inside the first segment's 2 x 400 passes
    job = await sync_to_async(Generation.objects.get)(pk=job_id)
    assert (job.status, job.error_code) == (GenerationStatus.CANCELLED, "cancelled")
    assert not await sync_to_async(Video.objects.filter(generation_id=job_id).exists)()
    assert len(passes) == stopped_at  # and nothing ran after it


async def test_an_extension_keeps_its_landscape_frame(wan_tiny):
    """A 16:9 job on a portrait-default model is made landscape, and its extension continues
    it landscape: the worker hands the source's frames over at the size the engine makes for
    the job (`frame_size_of`), not at the engine's default portrait size, which would squash
    them and pillarbox the result."""
    from django.core.files.storage import default_storage

    from generation.frames import frames_from_npz

    wan_tiny(steps=2)
    user = await sync_to_async(UserFactory)(username="wanda")
    ws = await connect(user)
    client, body = await create(
        user, prompt="a red ball rolls", model="wan-tiny", seconds="4", size="1280x720"
    )
    _progress, final = await generation_events(ws, body["id"])
    assert final["type"] == "generation.succeeded", final
    response = await sync_to_async(client.post)(
        "/v1/videos/extensions",
        {"prompt": "it rolls on", "seconds": "4", "video": {"id": body["id"]}},
        format="json",
    )
    assert response.status_code == 200, response.json()
    extension = response.json()["id"]
    _progress, final = await generation_events(ws, extension)
    await ws.disconnect()
    assert final["type"] == "generation.succeeded", final

    @sync_to_async
    def engine_frames(job_id: str) -> np.ndarray:
        video = Video.objects.get(generation_id=job_id)
        with default_storage.open(video.engine_frames, "rb") as fh:
            return frames_from_npz(fh.read())[0]

    first, extended = await engine_frames(body["id"]), await engine_frames(extension)
    # landscape at about the tiny model's pixel area (64x32 portrait by default)
    assert first.shape == (4 * FPS, 32, 64, 3)
    assert extended.shape == (8 * FPS, 32, 64, 3)
    # the extension begins with its source, frame for frame
    assert np.array_equal(extended[: 4 * FPS], first)
    video = await sync_to_async(Video.objects.get)(generation_id=extension)
    assert (video.width, video.height, video.frame_count) == (1280, 720, 8 * FPS)

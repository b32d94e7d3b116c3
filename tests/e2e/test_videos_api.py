"""The Videos API driven by the official `openai` package against a live Riff (uvicorn on a
loopback port, a real Celery worker, the real engine at its tiny size): a program written for
the API that closed works by changing its base URL and key.

Every clip is decoded back with PyAV: duration (frames at the engine's 8 fps) and size exact.
"""

from __future__ import annotations

import io
import warnings

import av
import openai
import pytest
from django.core.files.storage import default_storage
from PIL import Image

from accounts.apikeys import api_key_create
from cameos.models import Cameo, CameoKind, CameoStatus
from cameos.services import cameo_transition
from generation.models import Generation, GenerationCameo, SourceMode, Video, VideoState
from tests.e2e.conftest import celery_worker  # noqa: F401 - the worker thread fixture
from tests.factories import UserFactory
from tests.media import make_video

pytestmark = [
    pytest.mark.integration,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("celery_worker"),
    # The package marks the Videos API deprecated (the service it was written for closed).
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
]

FPS = 8


@pytest.fixture(autouse=True)
def _fast_polls(settings):
    settings.RIFF_VIDEOS_POLL_AFTER_MS = 50


def client_for(url: str, user, name: str = "integration") -> openai.OpenAI:
    _key, raw = api_key_create(user=user, name=name)
    return openai.OpenAI(api_key=raw, base_url=f"{url}/v1", max_retries=0, timeout=60)


def decode(data: bytes) -> tuple[int, int, int]:
    """(frames, width, height) of an MP4, every frame decoded."""
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.video[0]
        frames = sum(1 for _ in container.decode(stream))
        return frames, stream.codec_context.width, stream.codec_context.height


def poll(client: openai.OpenAI, video_id: str):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return client.videos.poll(video_id, poll_interval_ms=100)


def test_create_each_length_and_size_poll_download_list_and_delete(uvicorn_server):
    alice = UserFactory(username="alice")
    client = client_for(uvicorn_server, alice)
    made = []
    for seconds, size in (("4", "720x1280"), ("8", "1280x720"), ("12", "1024x1792")):
        video = client.videos.create(prompt="a red ball bounces", seconds=seconds, size=size)
        # Queued, or already picked up by the worker.
        assert video.status in ("queued", "in_progress")
        assert (video.object, video.seconds, video.size) == ("video", seconds, size)
        assert video.model == "riff-world" and video.progress == 0
        made.append(video.id)
    for video_id, (seconds, size) in zip(
        made, (("4", "720x1280"), ("8", "1280x720"), ("12", "1024x1792")), strict=True
    ):
        done = poll(client, video_id)
        assert done.status == "completed", done.error
        assert (done.progress, done.seconds, done.size, done.error) == (100, seconds, size, None)
        assert done.completed_at >= done.created_at
        mp4 = client.videos.download_content(video_id).read()
        width, height = (int(x) for x in size.split("x"))
        assert decode(mp4) == (int(seconds) * FPS, width, height)
    # The 1792x1024 size with the polling helper that creates too.
    wide = client.videos.create_and_poll(prompt="a blue cube slides", size="1792x1024")
    assert (wide.status, wide.seconds, wide.size) == ("completed", "4", "1792x1024")
    assert decode(client.videos.download_content(wide.id).read()) == (32, 1792, 1024)
    made.append(wide.id)

    thumb = Image.open(
        io.BytesIO(client.videos.download_content(wide.id, variant="thumbnail").read())
    )
    assert thumb.format == "JPEG" and thumb.size == (1792, 1024)
    sprites = Image.open(
        io.BytesIO(client.videos.download_content(wide.id, variant="spritesheet").read())
    )
    assert sprites.format == "JPEG" and sprites.size[0] > 0

    # Pages of two, newest first, then oldest first; the ids chain without a repeat or a gap.
    page = client.videos.list(limit=2)
    assert [v.id for v in page.data] == [made[3], made[2]] and page.has_more is True
    second = client.videos.list(limit=2, after=page.data[-1].id)
    assert [v.id for v in second.data] == [made[1], made[0]] and second.has_more is False
    assert [v.id for v in client.videos.list(order="asc").data] == made
    assert [v.id for v in client.videos.list(limit=1)] == made[::-1]  # the auto-pager

    deleted = client.videos.delete(made[0])
    assert (deleted.id, deleted.object, deleted.deleted) == (made[0], "video.deleted", True)
    with pytest.raises(openai.NotFoundError):
        client.videos.retrieve(made[0])
    video_row = Video.objects.get(generation_id=made[0])
    assert video_row.state == VideoState.REMOVED
    assert not default_storage.exists(video_row.content)
    assert [v.id for v in client.videos.list(order="asc").data] == made[1:]


def test_remix_extend_and_edit_continue_a_video(uvicorn_server):
    bob = UserFactory(username="bob")
    client = client_for(uvicorn_server, bob)
    source = client.videos.create_and_poll(prompt="a green ball rolls", seconds="4")
    assert source.status == "completed"

    remix = poll(client, client.videos.remix(source.id, prompt="a green ball rolls uphill").id)
    assert (remix.status, remix.remixed_from_video_id, remix.seconds) == (
        "completed",
        source.id,
        "4",
    )
    job = Generation.objects.get(pk=remix.id)
    assert (job.source_video.generation_id, job.source_mode) == (
        Generation.objects.get(pk=source.id).pk,
        SourceMode.REMIX,
    )

    # openai 3.51 sends `video` only as a file: the source exactly as downloaded is taken
    # (found by its SHA-256 among the caller's own videos).
    downloaded = client.videos.download_content(source.id).read()
    extension = client.videos.extend(
        prompt="it keeps rolling", seconds="4", video=("source.mp4", downloaded, "video/mp4")
    )
    assert extension.seconds == "8"  # the stitched whole, already while queued
    extension = poll(client, extension.id)
    assert (extension.status, extension.seconds) == ("completed", "8")
    stitched = client.videos.download_content(extension.id).read()
    assert decode(stitched) == (64, 720, 1280)

    # By id, as the API documents it, through the package's generic POST (JSON).
    edit = client.post(
        "/videos/edits",
        body={"prompt": "a red ball rolls", "video": {"id": source.id}},
        cast_to=openai.types.Video,
    )
    edit = poll(client, edit.id)
    assert (edit.status, edit.seconds, edit.size) == ("completed", "4", "720x1280")
    assert Generation.objects.get(pk=edit.id).seed == Generation.objects.get(pk=source.id).seed

    # Any other footage is refused: it could show anyone.
    with pytest.raises(openai.BadRequestError) as refused:
        client.videos.extend(prompt="more", seconds="4", video=("clip.mp4", make_video(2.0)))
    assert refused.value.body["code"] == "video_upload_unsupported"


def test_a_character_is_reviewed_then_used_by_its_handle(uvicorn_server):
    carol = UserFactory(username="carol")
    staff = UserFactory(username="mod", is_staff=True)
    client = client_for(uvicorn_server, carol)
    created = client.videos.create_character(
        name="Captain Cube", video=("cube.mp4", make_video(3.0, audio=False), "video/mp4")
    )
    assert created.name == "Captain Cube" and created.created_at > 0
    cameo = Cameo.objects.get(pk=created.id)
    assert (cameo.owner, cameo.kind) == (carol, CameoKind.CHARACTER)
    from tests.e2e.test_cameo_verification import wait_for

    assert wait_for(lambda: Cameo.objects.get(pk=created.id).status == CameoStatus.NEEDS_REVIEW)
    fetched = client.videos.get_character(created.id)
    assert (fetched.id, fetched.name) == (created.id, "Captain Cube")
    handle = Cameo.objects.get(pk=created.id).handle

    # Before review approves it, the handle is just text: the video carries no cameo.
    early = client.videos.create_and_poll(prompt=f"@{handle} waves")
    assert not GenerationCameo.objects.filter(generation_id=early.id).exists()

    cameo_transition(cameo=cameo, to=CameoStatus.ACTIVE, actor=staff, reason="approved")
    used = client.videos.create_and_poll(prompt=f"@{handle} waves hello")
    assert used.status == "completed"
    assert list(
        GenerationCameo.objects.filter(generation_id=used.id).values_list("cameo_id", flat=True)
    ) == [cameo.pk]
    assert Video.objects.get(generation_id=used.id).appearances.get().cameo_id == cameo.pk


def test_errors_are_the_packages_typed_exceptions(uvicorn_server, settings):
    dave, erin = UserFactory(username="dave"), UserFactory(username="erin")
    client, other = client_for(uvicorn_server, dave), client_for(uvicorn_server, erin)
    mine = client.videos.create(prompt="a yellow ball")

    bad = openai.OpenAI(api_key="rk_" + "x" * 43, base_url=f"{uvicorn_server}/v1", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as unauthorised:
        bad.videos.list()
    assert unauthorised.value.status_code == 401
    assert unauthorised.value.body["type"] == "authentication_error"

    for call in (
        lambda: other.videos.retrieve(mine.id),
        lambda: other.videos.delete(mine.id),
        lambda: other.videos.download_content(mine.id),
        lambda: other.videos.remix(mine.id, prompt="mine now"),
        lambda: client.videos.retrieve("video_does_not_exist"),
        lambda: client.videos.retrieve("00000000-0000-0000-0000-000000000000"),
    ):
        with pytest.raises(openai.NotFoundError) as missing:
            call()
        assert missing.value.body["code"] == "not_found"
    assert Generation.objects.get(pk=mine.id).api_deleted_at is None

    with pytest.raises(openai.BadRequestError) as invalid:
        client.videos.create(prompt="x", size="640x480")
    assert (invalid.value.body["param"], invalid.value.body["type"]) == (
        "size",
        "invalid_request_error",
    )
    with pytest.raises(openai.BadRequestError) as unknown_model:
        client.videos.create(prompt="x", model="not-a-model")
    assert unknown_model.value.body["code"] == "model_not_found"

    settings.RIFF_DAILY_QUOTA = Generation.objects.filter(owner=dave).count()
    before = Generation.objects.count()
    with pytest.raises(openai.RateLimitError) as over:
        client.videos.create(prompt="one too many")
    assert over.value.status_code == 429
    assert over.value.body["code"] == "quota_exceeded"
    assert over.value.response.headers["Retry-After"].isdigit()
    assert Generation.objects.count() == before


def test_an_input_reference_starts_the_clip_and_a_persons_photo_is_refused(uvicorn_server):
    from skimage import data as photos

    frank = UserFactory(username="frank")
    client = client_for(uvicorn_server, frank)

    def png(array) -> bytes:
        out = io.BytesIO()
        Image.fromarray(array).save(out, format="PNG")
        return out.getvalue()

    still = client.videos.create_and_poll(
        prompt="the cup slides off the table",
        input_reference=("cup.png", png(photos.coffee()), "image/png"),
    )
    assert still.status == "completed", still.error
    assert Generation.objects.get(pk=still.id).reference_image

    person = client.videos.create_and_poll(
        prompt="she waves", input_reference=("me.png", png(photos.astronaut()), "image/png")
    )
    assert (person.status, person.error.code) == ("failed", "input_reference_person")
    with pytest.raises(openai.NotFoundError):
        client.videos.download_content(person.id)

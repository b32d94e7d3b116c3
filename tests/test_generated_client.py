"""A Python client generated from the schema the running server serves drives the first slice
end to end, as a mobile team's generated client would: register -> generate -> poll ->
download the MP4 -> post -> find it in the feed and on the profile.

Real everything: openapi-python-client (the official generator, run as its CLI, warnings
fatal: a dropped operation or response fails here), a uvicorn server on a loopback port serving
the ASGI app, a Celery worker thread on the real Redis broker running the engine's tiny
config, PostgreSQL, and PyAV decoding the downloaded file.
"""

from __future__ import annotations

import importlib
import io
import subprocess
import sys
import time
import uuid
import warnings
from datetime import date

import av
import pytest

from accounts.services import invite_mint
from tests.e2e.conftest import celery_worker  # noqa: F401 - the worker thread fixture

pytestmark = [
    pytest.mark.integration,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("celery_worker"),
]

PACKAGE = "riff_generated_client"


@pytest.fixture
def generated_client(uvicorn_server, tmp_path):
    """The package openapi-python-client generates from the live `/api/schema/`."""
    config = tmp_path / "generator.yml"
    # Its ruff post-processing only restyles the code; skipping it keeps the test hermetic.
    config.write_text("post_hooks: []\n")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "openapi_python_client",
            "generate",
            "--url",
            f"{uvicorn_server}/api/schema/?format=json",
            "--output-path",
            str(tmp_path / PACKAGE),
            "--meta",
            "none",
            "--config",
            str(config),
            "--fail-on-warning",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    sys.path.insert(0, str(tmp_path))
    try:
        yield lambda name="": importlib.import_module(f"{PACKAGE}.{name}".rstrip("."))
    finally:
        sys.path.remove(str(tmp_path))
        for name in [m for m in sys.modules if m.split(".")[0] == PACKAGE]:
            del sys.modules[name]


def test_a_generated_client_registers_generates_downloads_posts_and_reads_the_feed(
    uvicorn_server, generated_client
):
    client_mod, models = generated_client(), generated_client("models")

    def op(name):
        tag = name.split("_")[0]
        return generated_client(f"api.{tag}.{name}")

    anon = client_mod.Client(base_url=uvicorn_server, raise_on_unexpected_status=True)
    code = invite_mint(created_by=None).code
    auth_out = op("auth_register_create").sync(
        client=anon,
        body=models.RegisterInRequest(
            username="genclient",
            email="genclient@example.com",
            password="a long secret pass",
            invite_code=code,
            birth_date=date(1994, 5, 6),
        ),
    )
    assert isinstance(auth_out, models.AuthOut), auth_out
    assert auth_out.user.username == "genclient"
    api = client_mod.AuthenticatedClient(
        base_url=uvicorn_server, token=auth_out.token, raise_on_unexpected_status=True
    )

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        job = op("generations_create").sync(
            client=api,
            body=models.GenerationInRequest(
                prompt="a red ball bounces", seconds=2, aspect=models.AspectEnum.VALUE_0, seed=7
            ),
            idempotency_key="genclient-1",
        )
        assert isinstance(job, models.GenerationOut), job
        assert job.status in (
            models.GenerationOutStatusEnum.QUEUED,
            models.GenerationOutStatusEnum.RUNNING,
        )

        deadline = time.monotonic() + 90
        while job.status not in (
            models.GenerationOutStatusEnum.SUCCEEDED,
            models.GenerationOutStatusEnum.FAILED,
        ):
            assert time.monotonic() < deadline, f"still {job.status} at {job.progress}"
            time.sleep(0.25)
            job = op("generations_retrieve").sync(job.id, client=api)
        assert job.status == models.GenerationOutStatusEnum.SUCCEEDED, job.error
        assert job.progress == 1.0 and job.completed_at is not None
        video = job.video
        assert isinstance(video, models.VideoOut) and video.state == models.StateEnum.DRAFT

        download = op("videos_content_retrieve").sync_detailed(
            video.id, client=api, variant=models.VideosContentRetrieveVariant.VIDEO
        )
        assert download.status_code == 200
        assert download.headers["content-type"] == "video/mp4"
        data = download.parsed.payload.read()

    # Served by uvicorn without Django's whole-file fallback for sync iterators.
    assert not [w for w in caught if "StreamingHttpResponse" in str(w.message)]

    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        frames = list(container.decode(stream))
    assert len(frames) == video.frame_count
    assert (frames[0].width, frames[0].height) == (video.width, video.height)
    import hashlib

    assert hashlib.sha256(data).hexdigest() == video.sha256

    post = op("posts_create").sync(
        client=api, body=models.PostInRequest(video_id=video.id, caption="made by a client")
    )
    assert isinstance(post, models.PostOut), post
    assert (post.caption, post.depth, post.video.id) == ("made by a client", 0, video.id)

    feed = op("feed_retrieve").sync(client=api, kind=models.FeedRetrieveKind.LATEST)
    assert isinstance(feed, models.PaginatedFeedItemOutList)
    assert [(item.kind, item.post.id) for item in feed.results] == [
        (models.FeedItemKindEnum.POST, post.id)
    ]

    mine = op("users_posts_retrieve").sync("genclient", client=api)
    assert [p.id for p in mine.results] == [post.id] and mine.next_ is None

    # Errors decode as the envelope too.
    missing = op("videos_retrieve").sync_detailed(uuid.uuid4(), client=api)
    assert missing.status_code == 404
    assert isinstance(missing.parsed, models.ErrorEnvelope)
    assert missing.parsed.error.code == "not_found"

"""The "remote" backend against a live Riff on loopback (uvicorn, the Videos API at /v1/, a
real Celery worker running the tiny riff-world engine at 8 fps), and against a small real HTTP
server standing in for a remote that is not Riff (vLLM-Omni: no `/cancel`, its own errors).

`generate` is called directly here; tests/e2e/test_remote_pipeline.py runs it as a job.
"""

from __future__ import annotations

import io
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import av
import numpy as np
import pytest
from django.core.files.storage import default_storage
from PIL import Image

from accounts.apikeys import api_key_create
from generation.engine.backends import (
    EngineUnavailable,
    GenerationRequest,
    InputUnsupported,
    get_engine,
    remote,
)
from generation.engine.backends.remote import RemoteUnavailable, remote_engine
from generation.models import Generation, GenerationStatus, Video
from tests import conftest
from tests.e2e.conftest import celery_worker  # noqa: F401 - the worker thread fixture
from tests.factories import UserFactory
from tests.media import make_video

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

worker = pytest.mark.usefixtures("celery_worker")


# The engine tests' conftest replaces the suite's Redis flush and media root with no-ops (the
# model tests need neither); these tests run a server and a worker, so they take them back.
_clean_redis, _media_root = conftest._clean_redis, conftest._media_root


@pytest.fixture
def account(db):
    """The remote Riff's user whose API key the engine holds, and the key."""
    user = UserFactory(username="remote_worker")
    _key, raw = api_key_create(user=user, name="remote engine")
    return user, raw


@pytest.fixture
def engine(uvicorn_server, account):
    def make(**options):
        options = {
            "base_url": f"{uvicorn_server}/v1",
            "api_key": account[1],
            "poll_interval": 0.1,
            "timeout": 120,
            **options,
        }
        return remote_engine(**options)

    return make


class Stop(Exception):
    """What the worker's on_progress raises when the job was cancelled (LostLease's role)."""


def remote_jobs(user) -> list[Generation]:
    return list(Generation.objects.filter(owner=user).order_by("created_at"))


def decoded(name: str) -> np.ndarray:
    with default_storage.open(name, "rb") as fh, av.open(io.BytesIO(fh.read())) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


def png(array: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(array).save(out, format="PNG")
    return out.getvalue()


# --------------------------------------------------------------------------- a live Riff


@worker
def test_a_clip_comes_back_at_the_engines_rate_size_and_length(engine, account):
    backend = engine()
    assert (backend.fps, backend.width, backend.height) == (16, 720, 1280)
    assert (backend.max_context_frames, backend.max_frames) == (1, 12 * 16)
    progress: list[tuple[int, int]] = []

    (clip,) = backend.generate(
        [GenerationRequest(prompt="a red ball bounces", frames=24, aspect="16:9")],
        on_progress=lambda done, total: progress.append((done, total)),
    )

    (job,) = remote_jobs(account[0])
    # 24 frames at 16 fps are 1.5 s: the shortest remote length that covers them is 4 s, at
    # the size of the request's aspect.
    assert (job.status, job.seconds, job.size, job.model) == (
        GenerationStatus.SUCCEEDED,
        4,
        "1280x720",
        "riff-world",
    )
    assert clip.frames.dtype == np.uint8 and clip.frames.shape == (24, 720, 1280, 3)
    assert clip.fps == 16 and clip.metadata["remote_id"] == str(job.pk)
    assert clip.metadata["source_fps"] == 8.0
    # Resampled by timestamp from the remote's 8 fps: each of its frames twice, in order.
    source = decoded(Video.objects.get(generation=job).content)
    assert source.shape == (32, 720, 1280, 3)
    assert np.array_equal(clip.frames, np.repeat(source[:12], 2, axis=0))

    assert {total for _, total in progress} == {100}
    done = [d for d, _ in progress]
    assert done == sorted(done) and len(done) >= 2
    assert progress[-1] == (100, 100) and done.count(100) == 1


@worker
def test_several_requests_are_submitted_together_and_come_back_in_order(engine, account):
    requests = [
        GenerationRequest(prompt="a green cube slides", frames=16, aspect="9:16"),
        GenerationRequest(prompt="a blue ball falls", frames=20, size="1280x720"),
    ]
    progress: list[int] = []
    clips = engine().generate(requests, on_progress=lambda done, total: progress.append(done))

    first, second = remote_jobs(account[0])
    assert [first.prompt, second.prompt] == ["a green cube slides", "a blue ball falls"]
    # Both were on the remote before the first one was done: not one after another.
    assert second.created_at < first.completed_at
    assert [c.frames.shape for c in clips] == [(16, 1280, 720, 3), (20, 720, 1280, 3)]
    assert [c.metadata["remote_id"] for c in clips] == [str(first.pk), str(second.pk)]
    assert progress == sorted(progress) and progress[-1] == 100 and progress.count(100) == 1


@worker
def test_a_cancel_raised_by_on_progress_propagates_and_cancels_the_remote_job(engine, account):
    stop = Stop("the job was cancelled")
    seen: list[str] = []

    def on_progress(done: int, total: int) -> None:
        jobs = remote_jobs(account[0])
        seen.append(jobs[0].status)
        if jobs[0].status == GenerationStatus.RUNNING:
            raise stop

    with pytest.raises(Stop) as raised:
        engine().generate([GenerationRequest(prompt="a red ball", frames=16)], on_progress)

    assert raised.value is stop  # unchanged, not wrapped
    (job,) = remote_jobs(account[0])
    assert seen[-1] == GenerationStatus.RUNNING
    # Cancelled before generate returned: the remote was told synchronously.
    assert (job.status, job.error_code) == (GenerationStatus.CANCELLED, "cancelled")
    assert not Video.objects.filter(generation=job).exists()


def test_cameos_never_leave_this_server(engine, account):
    backend = engine()
    face = np.zeros((64, 64, 3), dtype=np.uint8)
    for request in (
        GenerationRequest(prompt="@alice waves", frames=16, cameo_images=[face]),
        GenerationRequest(prompt="@alice waves", frames=16, instructions="@alice: a clock"),
    ):
        with pytest.raises(InputUnsupported) as refused:
            backend.generate([request])
        assert refused.value.code == "cameo_unsupported"
    # Refused before anything was sent, also for a batch where only the second has a cameo.
    with pytest.raises(InputUnsupported):
        backend.generate(
            [
                GenerationRequest(prompt="a ball", frames=16),
                GenerationRequest(prompt="@alice", frames=16, cameo_images=[face]),
            ]
        )
    assert remote_jobs(account[0]) == []


def test_a_refused_key_or_an_unknown_model_is_engine_unavailable(engine, account):
    request = GenerationRequest(prompt="a red ball", frames=16)
    with pytest.raises(EngineUnavailable) as unauthorised:
        engine(api_key="rk_" + "x" * 43).generate([request])
    assert "401" in str(unauthorised.value)
    assert "rk_" not in str(unauthorised.value)  # the key never reaches a log line
    with pytest.raises(EngineUnavailable) as unknown:
        engine(model="no-such-model").generate([request])
    assert "model_not_found" in str(unknown.value)
    assert remote_jobs(account[0]) == []


def test_a_server_that_is_not_listening_is_a_retryable_failure(account):
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    backend = remote_engine(base_url=f"http://127.0.0.1:{port}/v1", api_key=account[1])
    with pytest.raises(RemoteUnavailable) as down:
        backend.generate([GenerationRequest(prompt="a red ball", frames=16)])
    # Neither of the two errors the worker does not retry.
    assert not isinstance(down.value, EngineUnavailable | InputUnsupported)
    assert isinstance(down.value, RuntimeError) and f"127.0.0.1:{port}" in str(down.value)


def test_an_input_the_remote_refuses_is_remote_refused_with_its_code(engine, account, settings):
    # This remote takes no reference images: the context frame is a 400 there.
    settings.RIFF_VIDEO_REFERENCE_IMAGES = False
    context = np.full((1, 1280, 720, 3), 90, dtype=np.uint8)
    with pytest.raises(InputUnsupported) as refused:
        engine().generate(
            [GenerationRequest(prompt="it rolls on", frames=16, context_frames=context)]
        )
    assert refused.value.code == "remote_refused"
    assert "(input_reference_unsupported)" in str(refused.value)
    assert remote_jobs(account[0]) == []


@worker
def test_a_job_the_remote_fails_is_remote_failed_with_its_code(engine, account):
    from skimage import data as photos

    # A real face photo as the frame to continue: Riff refuses it when the job runs.
    context = photos.astronaut()[None]
    with pytest.raises(InputUnsupported) as failed:
        engine().generate(
            [GenerationRequest(prompt="she waves", frames=16, context_frames=context)]
        )
    assert failed.value.code == "remote_failed"
    assert "(input_reference_person)" in str(failed.value)
    (job,) = remote_jobs(account[0])
    assert (job.status, job.error_code) == (GenerationStatus.FAILED, "input_reference_person")
    # It went as a PNG upload: the remote stored it as the job's reference image.
    assert job.reference_image.endswith(".png")


def test_a_job_past_the_timeout_is_cancelled_remotely_and_retryable(engine, account):
    # No worker: the remote job stays queued.
    progress: list[tuple[int, int]] = []
    with pytest.raises(RemoteUnavailable) as late:
        engine(timeout=0.6).generate(
            [GenerationRequest(prompt="a red ball", frames=16)],
            on_progress=lambda done, total: progress.append((done, total)),
        )
    assert "did not finish within 0.6 s" in str(late.value)
    (job,) = remote_jobs(account[0])
    assert (job.status, job.error_code) == (GenerationStatus.CANCELLED, "cancelled")
    assert len(progress) >= 3 and set(progress) == {(0, 100)}


def test_the_registry_builds_it_by_name(uvicorn_server, account):
    from generation.engine.backends import Engine

    options = {"base_url": f"{uvicorn_server}/v1", "api_key": account[1], "fps": 8}
    built = get_engine("remote", **options)
    assert isinstance(built, Engine) and (built.name, built.fps, built.max_frames) == (
        "remote",
        8,
        96,
    )
    assert built is get_engine("remote", **options)
    for bad in ({"base_url": "ftp://x"}, {"size": "big"}, {"seconds": []}, {"fps": 0}):
        with pytest.raises(EngineUnavailable):
            remote_engine(**{"base_url": "http://127.0.0.1/v1", **bad})


# ------------------------------------------------------------- a remote that is not Riff


class OtherServer:
    """A real HTTP server on loopback answering the OpenAI Videos shape as a server without
    Riff's extensions would: no `/cancel` (404), DELETE stops a job. `create` is the answer to
    POST /v1/videos; `polls` the answers to GET /v1/videos/{id}, in turn (the last repeats);
    the content is a real 10 fps MP4. Every request is recorded."""

    def __init__(self, *, create=(200, {"id": "vid_1", "status": "queued"}), polls=()):
        self.create = create
        self.polls = list(polls) or [(200, {"id": "vid_1", "status": "in_progress"})]
        self.requests: list[tuple[str, str, dict, bytes]] = []
        self.content = make_video(2.0, audio=False, size=(96, 64), fps=10)
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self, status: int, body) -> None:
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _record(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                headers = {k.lower(): v for k, v in self.headers.items()}
                server.requests.append((self.command, self.path, headers, body))

            def do_POST(self):  # noqa: N802 - http.server's name
                self._record()
                if self.path == "/v1/videos":
                    return self._answer(*server.create)
                self._answer(404, {"detail": "Not Found"})

            def do_GET(self):  # noqa: N802
                self._record()
                if self.path == "/v1/videos/vid_1/content":
                    return self._answer(200, server.content)
                gets = sum(1 for r in server.requests if r[:2] == ("GET", "/v1/videos/vid_1"))
                self._answer(*server.polls[min(gets, len(server.polls)) - 1])

            def do_DELETE(self):  # noqa: N802
                self._record()
                self._answer(200, {"id": "vid_1", "object": "video.deleted", "deleted": True})

            def log_message(self, *args):
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.http.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}/v1"
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    def calls(self) -> list[tuple[str, str]]:
        return [(method, path) for method, path, _, _ in self.requests]

    def close(self) -> None:
        self.http.shutdown()
        self.http.server_close()


@pytest.fixture
def other_server():
    made: list[OtherServer] = []

    def make(**kwargs) -> OtherServer:
        made.append(OtherServer(**kwargs))
        return made[-1]

    yield make
    for server in made:
        server.close()


def test_without_a_cancel_endpoint_the_job_is_deleted(other_server):
    server = other_server()
    backend = remote_engine(base_url=server.url, api_key="", model="wan-t2v", poll_interval=0.05)

    def on_progress(done: int, total: int) -> None:
        raise Stop()

    with pytest.raises(Stop):
        backend.generate([GenerationRequest(prompt="a red ball", frames=16)], on_progress)
    assert server.calls() == [
        ("POST", "/v1/videos"),
        ("GET", "/v1/videos/vid_1"),
        ("POST", "/v1/videos/vid_1/cancel"),
        ("DELETE", "/v1/videos/vid_1"),
    ]
    _method, _path, headers, body = server.requests[0]
    # JSON without a context frame; the model named; no key, no Authorization header.
    assert json.loads(body) == {
        "prompt": "a red ball",
        "seconds": "4",
        "size": "720x1280",
        "model": "wan-t2v",
    }
    assert "authorization" not in headers


def test_polls_ride_out_a_restarting_server_and_the_clip_is_resampled(other_server):
    server = other_server(
        polls=[
            (200, {"id": "vid_1", "status": "in_progress", "progress": 40}),
            (503, {"error": {"message": "restarting", "code": "unavailable"}}),
            (502, b"<html>bad gateway</html>"),
            (200, b"<html>maintenance</html>"),
            (200, {"id": "vid_1", "status": "in_progress", "progress": 30}),
            (200, {"id": "vid_1", "status": "completed", "progress": 100}),
        ]
    )
    backend = remote_engine(base_url=server.url, api_key="k", fps=15, poll_interval=0.05)
    progress: list[int] = []
    context = np.full((3, 1280, 720, 3), 200, dtype=np.uint8)
    context[-1] = 7
    (clip,) = backend.generate(
        [GenerationRequest(prompt="on it goes", frames=30, context_frames=context)],
        on_progress=lambda done, total: progress.append(done),
    )
    # 2 s at 10 fps resampled to 15 fps: all 30 frames, 64x96 as the remote made them.
    assert clip.frames.shape == (30, 64, 96, 3) and clip.fps == 15
    # Never backwards (40, then the remote said 30), 100 once, at the end.
    assert progress == [40, 40, 40, 40, 40, 100]
    _method, _path, headers, body = server.requests[0]
    assert headers["authorization"] == "Bearer k"
    assert headers["content-type"].startswith("multipart/form-data")
    # The last context frame, as a PNG.
    start = body.index(b"\x89PNG")
    image = np.asarray(Image.open(io.BytesIO(body[start:])))
    assert image.shape == (1280, 720, 3) and (image == 7).all()


def test_a_poll_failing_past_the_grace_gives_up_and_cancels(other_server, monkeypatch):
    monkeypatch.setattr(remote, "POLL_GRACE_SECONDS", 0.3)
    server = other_server(polls=[(500, {"error": {"message": "boom"}})])
    backend = remote_engine(base_url=server.url, api_key="k", poll_interval=0.05)
    with pytest.raises(RemoteUnavailable) as failing:
        backend.generate([GenerationRequest(prompt="a ball", frames=16)])
    assert "500" in str(failing.value) and "boom" in str(failing.value)
    assert server.calls()[-2:] == [
        ("POST", "/v1/videos/vid_1/cancel"),
        ("DELETE", "/v1/videos/vid_1"),
    ]


@pytest.mark.parametrize(
    ("status", "body", "error", "says"),
    [
        (503, {"error": {"message": "overloaded"}}, RemoteUnavailable, "overloaded"),
        (429, {"error": {"code": "rate_limited", "message": "slow"}}, RemoteUnavailable, "slow"),
        (401, {"error": {"code": "invalid_api_key", "message": "no"}}, EngineUnavailable, "401"),
        (403, {"error": {"message": "not allowed"}}, EngineUnavailable, "403"),
        (404, {"detail": "Not Found"}, EngineUnavailable, "404"),
        (400, {"error": {"code": "model_not_found", "message": "?"}}, EngineUnavailable, "model"),
        (403, {"error": {"code": "content_policy", "message": "no"}}, InputUnsupported, "(co"),
        (400, {"detail": "size must be 720x1280"}, InputUnsupported, "(400): size must be"),
        (413, b"too big", InputUnsupported, "(413)"),
    ],
)
def test_what_each_refused_create_becomes(other_server, status, body, error, says):
    server = other_server(create=(status, body))
    backend = remote_engine(base_url=server.url, api_key="k")
    with pytest.raises(error) as raised:
        backend.generate([GenerationRequest(prompt="a ball", frames=16)])
    assert says in str(raised.value)
    if error is InputUnsupported:
        assert raised.value.code == "remote_refused"
    assert server.calls() == [("POST", "/v1/videos")]  # nothing to cancel, nothing retried


@pytest.mark.parametrize(
    "limits,says",
    [({"max_bytes": 2000}, "sent a video over 2000 bytes"), ({"max_side": 64}, "96x64, larger")],
)
def test_an_oversized_answer_is_refused_not_decoded(other_server, limits, says):
    """A remote is not trusted to send something small: the download stops at `max_bytes`
    and a frame larger than `max_side` is never decoded."""
    server = other_server(polls=[(200, {"id": "vid_1", "status": "completed", "progress": 100})])
    assert len(server.content) > 2000
    backend = remote_engine(base_url=server.url, api_key="k", poll_interval=0.05, **limits)
    with pytest.raises(RemoteUnavailable, match=says) as failed:
        backend.generate([GenerationRequest(prompt="big", frames=8)])
    assert failed.value.transient is False

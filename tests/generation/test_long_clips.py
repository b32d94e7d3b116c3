"""Clips longer than one engine call, and jobs that start from something: a video of the
caller's (extend, remix, edit) or a reference image. The real tiny engine (32x32, at most 32
frames a call, 4 context frames) with a spy on the requests it is given; the worker run on job
rows; the delivered MP4s decoded with PyAV."""

from __future__ import annotations

import io

import numpy as np
import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from PIL import Image
from skimage import data

from generation import runner
from generation.engine import backends
from generation.engine.backends import GeneratedClip, clear_engine_cache, register_engine
from generation.frames import frames_from_npz, resize_frames
from generation.media import probe_mp4
from generation.models import Generation, Video, VideoState
from generation.services.videos import video_remove, video_takedown
from generation.tasks import generation_run

pytestmark = pytest.mark.django_db


@pytest.fixture
def spy(monkeypatch):
    """Every call the worker makes to the real engine: (requests, the frames it returned)."""
    backend = runner.engine()
    real = backend.generate
    calls: list[tuple[list, list[np.ndarray]]] = []

    def generate(requests, on_progress=None, **options):
        clips = real(requests, on_progress=on_progress, **options)
        calls.append((list(requests), [np.array(clip.frames) for clip in clips]))
        return clips

    monkeypatch.setattr(backend, "generate", generate)
    return calls


def requests_of(calls) -> list:
    return [request for requests, _ in calls for request in requests]


def run(job: Generation) -> Generation:
    """The worker task on the job, as a delivered message would run it; the job reloaded."""
    outcome = generation_run(str(job.pk))
    job.refresh_from_db()
    assert outcome == job.status
    return job


def read(name: str) -> bytes:
    with default_storage.open(name, "rb") as fh:
        return fh.read()


def engine_frames(video: Video) -> np.ndarray:
    frames, fps = frames_from_npz(read(video.engine_frames))
    assert fps == 8.0
    return frames


def made(user, *, seconds: int) -> Video:
    job = Generation.objects.create(owner=user, prompt="a red ball", seed=11, seconds=seconds)
    assert run(job).status == "succeeded", job.error_code
    return Video.objects.get(generation=job)


# --- long clips -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "seconds,frames,segments", [(8, 64, [32, 32]), (12, 96, [32, 32, 32]), (5, 40, [32, 8])]
)
def test_a_long_job_is_made_segment_by_segment(user, spy, seconds, frames, segments):
    job = Generation.objects.create(
        owner=user, prompt="a blue ball rolls", seed=40, seconds=seconds
    )
    progress: list[tuple[int, int]] = []
    clip, fps = runner.sample_job(job, lambda done, total: progress.append((done, total)))

    assert clip.shape == (frames, 32, 32, 3) and clip.dtype == np.uint8 and fps == 8.0
    requests = requests_of(spy)
    assert [r.frames for r in requests] == segments
    assert [r.seed for r in requests] == [40 + i for i in range(len(segments))]
    assert {r.prompt for r in requests} == {"a blue ball rolls"}
    # the first segment starts from nothing; each next one continues the frames made so far
    assert requests[0].context_frames is None
    edges = np.cumsum(segments)[:-1]
    for request, edge in zip(requests[1:], edges, strict=True):
        assert np.array_equal(request.context_frames, clip[edge - 4 : edge])
    # the clip is the segments as the engine made them, in order
    pieces = [out[0][:n] for (_, out), n in zip(spy, segments, strict=True)]
    assert np.array_equal(clip, np.concatenate(pieces))
    # progress: one scale for the whole clip, never backwards, ending at the end
    assert {total for _, total in progress} == {runner.PROGRESS_SCALE}
    values = [done for done, _ in progress]
    assert values == sorted(values) and values[-1] == runner.PROGRESS_SCALE and values[0] > 0
    # each segment's share is its frames' share: the first segment ends at 32 / frames
    assert round(runner.PROGRESS_SCALE * segments[0] / frames) in values


def test_the_worker_delivers_every_frame_of_a_long_clip(user, spy):
    job = run(Generation.objects.create(owner=user, prompt="a red ball", seed=2, seconds=8))
    assert (job.status, job.error_code, job.attempts) == ("succeeded", "", 1)
    video = Video.objects.get(generation=job)
    assert (video.frame_count, video.seconds) == (64, 8.0)
    info = probe_mp4(read(video.content))
    assert (info["frames"], info["fps"], info["duration_s"]) == (64, 8.0, 8.0)
    kept = engine_frames(video)
    assert kept.shape == (64, 32, 32, 3)
    assert np.array_equal(kept, np.concatenate([out[0] for _, out in spy]))


class Flat:
    """A backend with the Engine protocol only (plus `max_frames` when given): frame i of a
    request with seed s is flat grey (s * 10 + i) % 256."""

    name, fps, height, width = "flat", 8, 16, 16

    def __init__(self, *, context: int = 0, max_frames: int | None = None):
        self.max_context_frames = context
        if max_frames is not None:
            self.max_frames = max_frames
        self.requests: list = []

    def generate(self, requests, on_progress=None):
        self.requests += requests
        clips = []
        for request in requests:
            count = request.frames or round(request.seconds * self.fps)
            values = (request.seed * 10 + np.arange(count)) % 256
            frames = np.broadcast_to(
                values.astype(np.uint8)[:, None, None, None], (count, 16, 16, 3)
            ).copy()
            clips.append(GeneratedClip(frames, self.fps, {}))
        for done in (1, 2):
            if on_progress is not None:
                on_progress(done, 2)
        return clips


@pytest.fixture
def flat(settings):
    built: list[Flat] = []

    def factory(**options):
        built.append(Flat(**options))
        return built[-1]

    register_engine("flat", factory)
    settings.RIFF_ENGINE = "flat"
    settings.RIFF_ENGINE_OPTIONS = {}
    yield built
    clear_engine_cache()
    with backends._LOCK:
        backends._FACTORIES.pop("flat", None)


def test_a_backend_without_max_frames_is_asked_for_everything_at_once(user, flat):
    job = Generation.objects.create(owner=user, prompt="p", seed=1, seconds=12)
    progress: list = []
    clip, _ = runner.sample_job(job, lambda done, total: progress.append((done, total)))
    (request,) = flat[0].requests
    assert (request.frames, request.seconds, request.seed) == (96, 12.0, 1)
    assert clip.shape == (96, 16, 16, 3)
    assert progress == [(1, 2), (2, 2)]  # one call: the backend's own steps, as they come


def test_a_backend_without_context_concatenates_independent_segments(user, flat, settings):
    settings.RIFF_ENGINE_OPTIONS = {"max_frames": 16, "context": 0}
    job = Generation.objects.create(owner=user, prompt="p", seed=3, seconds=5)
    clip, _ = runner.sample_job(job, lambda done, total: None)
    requests = flat[0].requests
    assert [(r.frames, r.seed, r.context_frames) for r in requests] == [
        (16, 3, None),
        (16, 4, None),
        (8, 5, None),
    ]
    expected = np.concatenate(
        [(seed * 10 + np.arange(n)) % 256 for seed, n in ((3, 16), (4, 16), (5, 8))]
    )
    assert np.array_equal(clip[:, 0, 0, 0], expected) and clip.shape == (40, 16, 16, 3)


# --- sources ----------------------------------------------------------------------------------


def test_an_extension_continues_the_source_and_delivers_both_rendered_once(user, spy):
    source = made(user, seconds=4)
    before = engine_frames(source)
    assert before.shape == (32, 32, 32, 3)
    spy.clear()
    job = run(
        Generation.objects.create(
            owner=user,
            prompt="the ball keeps rolling",
            seed=21,
            seconds=4,
            source_video=source,
            source_mode="extend",
        )
    )
    assert (job.status, job.error_code) == ("succeeded", "")
    video = Video.objects.get(generation=job)
    assert (video.frame_count, video.seconds) == (64, 8.0)
    assert probe_mp4(read(video.content))["frames"] == 64
    stitched = engine_frames(video)
    assert stitched.shape == (64, 32, 32, 3)
    # the source's frames exactly, then the new ones as the engine made them
    assert np.array_equal(stitched[:32], before)
    (request,) = requests_of(spy)
    assert np.array_equal(request.context_frames, before[-4:])
    assert request.seed == 21 and request.frames == 32
    assert np.array_equal(stitched[32:], spy[0][1][0])
    # the source is untouched
    source.refresh_from_db()
    assert source.state == VideoState.DRAFT and np.array_equal(engine_frames(source), before)


def test_an_old_video_without_engine_frames_still_extends(user, spy):
    source = made(user, seconds=4)
    exact = engine_frames(source)
    default_storage.delete(source.engine_frames)
    Video.objects.filter(pk=source.pk).update(engine_frames="")
    spy.clear()
    job = run(
        Generation.objects.create(
            owner=user, prompt="on", seed=5, seconds=4, source_video=source, source_mode="extend"
        )
    )
    assert (job.status, job.error_code) == ("succeeded", "")
    video = Video.objects.get(generation=job)
    assert video.frame_count == 64
    stitched = engine_frames(video)
    # decoded from the MP4 and brought back to engine size: H.264 moves a few values
    assert np.abs(stitched[:32].astype(int) - exact).mean() < 6
    (request,) = requests_of(spy)
    assert np.abs(request.context_frames.astype(int) - exact[-4:]).mean() < 6
    assert np.array_equal(stitched[32:], spy[0][1][0])


def test_a_remix_of_an_own_video_continues_it_and_delivers_the_new_clip(user, spy):
    source = made(user, seconds=4)
    spy.clear()
    job = run(
        Generation.objects.create(
            owner=user, prompt="again", seed=8, source_video=source, source_mode="remix"
        )
    )
    assert job.status == "succeeded"
    (request,) = requests_of(spy)
    assert np.array_equal(request.context_frames, engine_frames(source)[-4:])
    video = Video.objects.get(generation=job)
    assert video.frame_count == 16
    assert np.array_equal(engine_frames(video), spy[0][1][0][:16])


def test_an_edit_is_a_fresh_generation(user, spy):
    source = made(user, seconds=4)
    spy.clear()
    job = Generation.objects.create(
        owner=user, prompt="now blue", seed=11, seconds=4, source_video=source, source_mode="edit"
    )
    clip, _ = runner.sample_job(job, lambda done, total: None)
    (request,) = requests_of(spy)
    assert request.context_frames is None and request.seed == 11
    assert clip.shape == (32, 32, 32, 3)


def _gone(video: Video, how: str) -> None:
    if how == "removed":
        video_remove(video=video, reason="test")
    elif how == "taken_down":
        video_takedown(video=video, reason="test")
    elif how == "held":
        Video.objects.filter(pk=video.pk).update(state=VideoState.HELD)
    elif how == "row_deleted":
        video.delete()
    elif how == "files_missing":
        default_storage.delete(video.engine_frames)
        default_storage.delete(video.content)
    elif how == "files_corrupt":
        for name in (video.engine_frames, video.content):
            default_storage.delete(name)
            default_storage.save(name, ContentFile(b"\0\0\0\x18ftypmp42 not a video"))


@pytest.mark.parametrize("mode", ["extend", "remix"])
@pytest.mark.parametrize(
    "how", ["removed", "taken_down", "held", "row_deleted", "files_missing", "files_corrupt"]
)
def test_a_source_that_is_gone_fails_the_job_without_retrying(user, spy, mode, how):
    source = made(user, seconds=2)
    job = Generation.objects.create(
        owner=user, prompt="more", seed=1, source_video=source, source_mode=mode
    )
    _gone(source, how)
    spy.clear()
    run(job)
    assert (job.status, job.error_code, job.attempts) == ("failed", "source_unavailable", 1)
    assert job.error_message == "The video this job starts from is no longer available."
    assert spy == [] and not Video.objects.filter(generation=job).exists()


# --- reference images -------------------------------------------------------------------------


def stored_png(image: np.ndarray, name: str = "refs/ref.png") -> str:
    out = io.BytesIO()
    Image.fromarray(image).save(out, format="PNG")
    return default_storage.save(name, ContentFile(out.getvalue()))


def test_a_reference_image_conditions_the_first_frame(user, spy):
    coffee = data.coffee()
    job = Generation.objects.create(
        owner=user, prompt="a cup", seed=4, seconds=8, reference_image=stored_png(coffee)
    )
    clip, _ = runner.sample_job(job, lambda done, total: None)
    first, second = requests_of(spy)
    still = resize_frames([coffee], height=32, width=32)[0]
    assert first.context_frames.shape == (4, 32, 32, 3)
    assert all(np.array_equal(frame, still) for frame in first.context_frames)
    # the image starts the clip; later segments continue the clip, not the image
    assert np.array_equal(second.context_frames, clip[28:32])
    assert clip.shape == (64, 32, 32, 3)
    spy.clear()
    assert run(job).status == "succeeded"
    assert Video.objects.get(generation=job).frame_count == 64


def test_a_reference_image_of_a_person_fails_the_job(user, spy):
    job = Generation.objects.create(
        owner=user, prompt="an astronaut", seed=4, reference_image=stored_png(data.astronaut())
    )
    run(job)
    assert (job.status, job.error_code, job.attempts) == ("failed", "input_reference_person", 1)
    assert "verified cameo" in job.error_message
    assert spy == [] and not Video.objects.filter(generation=job).exists()


def test_a_reference_image_needs_a_backend_that_takes_context(user, flat):
    job = Generation.objects.create(
        owner=user, prompt="a cup", seed=4, reference_image=stored_png(data.coffee())
    )
    run(job)
    assert (job.status, job.error_code, job.attempts) == (
        "failed",
        "input_reference_unsupported",
        1,
    )
    assert job.error_message == "The flat engine can't start a clip from a reference image."
    assert flat[0].requests == [] and not Video.objects.filter(generation=job).exists()


def test_a_reference_image_that_cant_be_read_fails_the_job(user, spy):
    name = default_storage.save("refs/broken.png", ContentFile(b"\x89PNG\r\n\x1a\n broken"))
    missing = Generation.objects.create(
        owner=user, prompt="a", seed=1, reference_image="refs/no.png"
    )
    broken = Generation.objects.create(owner=user, prompt="a", seed=1, reference_image=name)
    for job in (missing, broken):
        run(job)
        assert (job.status, job.error_code) == ("failed", "input_reference_unavailable")
    assert spy == []


# --- the engine a job names -------------------------------------------------------------------


def test_a_job_runs_on_the_engine_it_names(user, settings):
    extra = Flat(context=2, max_frames=8)
    register_engine("flat-extra", lambda **options: extra)
    try:
        named = Generation.objects.create(
            owner=user, prompt="p", seed=2, seconds=2, model="flat-extra"
        )
        clip, fps = runner.sample_job(named, lambda done, total: None)
        assert clip.shape == (16, 16, 16, 3) and fps == 8.0
        assert [(r.frames, r.seed) for r in extra.requests] == [(8, 2), (8, 3)]
        # blank or the configured engine: RIFF_ENGINE with its options
        for model in ("", settings.RIFF_ENGINE):
            job = Generation.objects.create(owner=user, prompt="p", seed=2, model=model)
            assert runner.job_engine(job) is runner.engine()
        # an engine this worker doesn't have fails the job, not retried
        unknown = run(Generation.objects.create(owner=user, prompt="p", seed=2, model="nope"))
        assert (unknown.status, unknown.error_code, unknown.attempts) == (
            "failed",
            "engine_unavailable",
            1,
        )
    finally:
        clear_engine_cache()
        with backends._LOCK:
            backends._FACTORIES.pop("flat-extra", None)

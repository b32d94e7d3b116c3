"""The worker's hot path (issue #31): the engine warmed once per process, progress reported
without making the sampler wait (and still the cancellation point), the stage timings every
job reports, and a watermark drawn once per clip that looks exactly as before."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from PIL import Image, ImageDraw

from generation import media, runner, timing
from generation.engine.backends import clear_engine_cache, get_engine
from generation.models import Generation, GenerationStatus
from generation.services.jobs import (
    LostLease,
    ProgressReporter,
    generation_cancel,
    generation_claim,
)
from generation.tasks import generation_run


def _running(owner) -> Generation:
    job = Generation.objects.create(owner=owner, prompt="a red ball", seed=1)
    return generation_claim(generation_id=job.pk)


@pytest.mark.django_db(transaction=True)
def test_progress_is_reported_off_the_sampler_thread_and_still_cancels(user):
    job = _running(user)
    reporter = ProgressReporter(job, every=0.05)
    callers = []

    def sampler_step(done):
        began = time.perf_counter()
        reporter(done, 10)
        callers.append(time.perf_counter() - began)

    sampler_step(1)
    deadline = time.monotonic() + 5
    while Generation.objects.get(pk=job.pk).progress == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert Generation.objects.get(pk=job.pk).progress == pytest.approx(0.09)
    assert reporter._thread is not None and reporter._thread is not threading.current_thread()
    generation_cancel(generation=Generation.objects.get(pk=job.pk))
    # A report after the cancel finds the job gone; the step after it raises.
    deadline = time.monotonic() + 10
    with pytest.raises(LostLease):
        for done in range(2, 10_000):
            sampler_step(min(done, 9))
            assert time.monotonic() < deadline, "the cancel was never noticed"
            time.sleep(0.02)
    reporter.close()
    assert sorted(callers)[len(callers) // 2] < 0.02  # the sampler does not wait on reports
    assert Generation.objects.get(pk=job.pk).status == GenerationStatus.CANCELLED


@pytest.mark.django_db(transaction=True)
def test_close_sends_the_last_step(user):
    job = _running(user)
    reporter = ProgressReporter(job, every=10)
    reporter(1, 4)
    reporter(4, 4)  # within the interval: only recorded
    reporter.close()
    assert Generation.objects.get(pk=job.pk).progress == pytest.approx(0.9)


@pytest.mark.django_db
def test_inside_a_transaction_reports_are_made_inline(user):
    job = _running(user)
    reporter = ProgressReporter(job, every=0)
    reporter(5, 10)
    assert reporter._thread is None
    assert Generation.objects.get(pk=job.pk).progress == pytest.approx(0.45)
    Generation.objects.filter(pk=job.pk).update(status=GenerationStatus.CANCELLED)
    with pytest.raises(LostLease):
        reporter(6, 10)
    reporter.close()


@pytest.mark.django_db
def test_every_job_reports_its_stages(user):
    seen = {}
    stop = timing.listen(lambda job_id, summary: seen.update({job_id: summary}))
    try:
        job = Generation.objects.create(owner=user, prompt="a red ball bounces", seed=3)
        assert generation_run(str(job.pk)) == "succeeded"
    finally:
        stop()
    summary = seen[str(job.pk)]
    assert summary["outcome"] == "succeeded"
    assert summary["started"] <= summary["finished"] <= time.time()
    assert set(summary["stages"]) == {
        "claim",
        "checks",
        "model",
        "inputs",
        "sampling",
        "progress",
        "verify",
        "frames",
        "encode",
        "sign",
        "previews",
        "store",
        "finish",
    }
    stages = summary["stages"]
    assert stages["progress"] <= stages["sampling"]
    assert sum(stages.values()) - stages["progress"] <= (
        summary["finished"] - summary["started"] + 0.01
    )


@pytest.mark.django_db
def test_a_skipped_message_reports_nothing(user):
    seen = []
    stop = timing.listen(lambda job_id, summary: seen.append(job_id))
    try:
        done = Generation.objects.create(
            owner=user, prompt="p", seed=1, status=GenerationStatus.SUCCEEDED
        )
        assert generation_run(str(done.pk)) == "skipped"
    finally:
        stop()
    assert seen == []


def test_warm_builds_the_engine_once_and_runs_it(settings):
    settings.RIFF_ENGINE_OPTIONS = {"config": "tiny", "weights": None, "steps": 2}
    clear_engine_cache()
    runner.warm()
    built = get_engine(settings.RIFF_ENGINE, **settings.RIFF_ENGINE_OPTIONS)
    assert runner.engine() is built
    built.warm()  # idempotent, cheap


def test_a_gpu_worker_prepares_its_process(settings, monkeypatch):
    from config import celery as celery_config

    calls = []
    monkeypatch.setattr(runner, "warm", lambda: calls.append("warm"))

    class Queues:
        consume_from = {"gpu": object()}

    class App:
        class amqp:  # noqa: N801 - shaped like Celery's
            queues = Queues()

    class Embedded:
        pool_cls = "solo"
        app = App()

    celery_config._on_worker_init(sender=Embedded())
    assert calls == ["warm"]
    Embedded.pool_cls = "prefork"  # children warm themselves (worker_process_init)
    celery_config._on_worker_init(sender=Embedded())
    Queues.consume_from = {"media": object()}
    Embedded.pool_cls = "solo"
    celery_config._on_worker_init(sender=Embedded())
    assert calls == ["warm"]


def _composited(image: Image.Image, *, handle: str, corner: str) -> Image.Image:
    """The watermark as it was drawn before issue #31: a full-frame overlay per frame."""
    width, height = image.size
    size = max(12, min(width, height) // 18)
    font, small = media._font(size), media._font(max(10, int(size * 0.7)))
    lines = [("Riff", font), (f"@{handle}", small)]
    margin = max(6, size // 2)
    overlay = Image.new("RGBA", image.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    boxes = [draw.textbbox((0, 0), text, font=f, stroke_width=2) for text, f in lines]
    block_w = max(b[2] - b[0] for b in boxes)
    block_h = sum(b[3] - b[1] for b in boxes) + margin // 2
    x = margin if "left" in corner else width - block_w - margin
    y = margin if "top" in corner else height - block_h - margin
    for (text, f), box in zip(lines, boxes, strict=True):
        draw.text(
            (x - box[0], y - box[1]),
            text,
            font=f,
            fill=(255, 255, 255, 200),
            stroke_width=2,
            stroke_fill=(0, 0, 0, 170),
        )
        y += box[3] - box[1] + margin // 2
    return Image.alpha_composite(image.convert("RGBA"), overlay).convert("RGB")


@pytest.mark.parametrize("size", [(512, 910), (512, 512), (97, 33)])
def test_the_watermark_tile_gives_the_same_pixels(size):
    rng = np.random.default_rng(1)
    base = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
    for corner in media.CORNERS:
        expected = np.asarray(_composited(base.copy(), handle="some_one", corner=corner))
        got = np.asarray(media.watermark(base.copy(), handle="some_one", corner=corner))
        assert np.array_equal(expected, got), corner


def test_prepare_frames_stamps_each_frame_at_its_corner():
    frames = np.full((16, 32, 32, 3), 60, np.uint8)
    images = media.prepare_frames(frames, fps=8, handle="who", short_side=64)
    for index, image in enumerate(images):
        expected = _composited(
            Image.fromarray(frames[index]).resize((64, 64), Image.Resampling.NEAREST),
            handle="who",
            corner=media.corner_for(index, 8),
        )
        assert np.array_equal(np.asarray(image), np.asarray(expected)), index


def test_stage_clock_adds_up_and_notes():
    clock = timing.StageClock()
    with clock.stage("a"):
        pass
    with clock.stage("a"):
        time.sleep(0.001)
    clock.note("b", 0.5)
    summary = clock.summary("succeeded")
    assert summary["stages"]["a"] > 0 and summary["stages"]["b"] == 0.5
    assert summary["started"] <= summary["finished"]

"""The capacity model (generation.metrics.capacity_plan) and `manage.py generation_capacity`,
which reads a worker's measured clip times from its own metrics port."""

from __future__ import annotations

import io
import socket

import pytest
from django.core.management import CommandError, call_command
from prometheus_client import CollectorRegistry, Histogram, start_http_server

from generation.metrics import CLIP_BUCKETS, capacity_plan, mean_clip_seconds


def test_the_plan_provisions_the_peak_at_the_target_utilisation():
    plan = capacity_plan(per_day=10_000, clip_seconds=240, peak_factor=2, target_utilisation=0.8)
    assert plan.busy == pytest.approx(10_000 * 240 / 86_400)  # 27.78 slots on average
    assert plan.peak == pytest.approx(2 * 10_000 * 240 / 86_400)  # 55.56 at the peak hour
    assert plan.workers == 70  # ceil(55.56 / 0.8)
    assert plan.utilisation == pytest.approx(27.7778 / 70, rel=1e-4)
    # a worker measured while running two jobs at once counts as two slots
    assert capacity_plan(per_day=10_000, clip_seconds=240, jobs_per_worker=2).workers == 35
    # exactly on a boundary: 86,400 one-second clips a day, flat, at 100 % is one slot
    assert (
        capacity_plan(per_day=86_400, clip_seconds=1, peak_factor=1, target_utilisation=1).workers
        == 1
    )
    assert capacity_plan(per_day=0, clip_seconds=5).workers == 0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"per_day": -1, "clip_seconds": 5},
        {"per_day": 10, "clip_seconds": 0},
        {"per_day": 10, "clip_seconds": 5, "peak_factor": 0.5},
        {"per_day": 10, "clip_seconds": 5, "target_utilisation": 0},
        {"per_day": 10, "clip_seconds": 5, "target_utilisation": 1.5},
    ],
)
def test_nonsense_is_refused(kwargs):
    with pytest.raises(ValueError):
        capacity_plan(**kwargs)


def _worker_metrics() -> CollectorRegistry:
    """What a worker that ran three clips of engine `wan` (one failed) and one of another
    engine exposes."""
    registry = CollectorRegistry()
    clips = Histogram(
        "riff_generation_clip_seconds",
        "clip time",
        ["engine", "outcome"],
        buckets=CLIP_BUCKETS,
        registry=registry,
    )
    clips.labels("wan", "succeeded").observe(80.0)
    clips.labels("wan", "succeeded").observe(100.0)
    clips.labels("wan", "failed").observe(5.0)  # not a clip made: left out
    clips.labels("riff-world", "succeeded").observe(4.0)
    return registry


def test_the_mean_clip_time_comes_from_succeeded_clips_of_that_engine():
    from prometheus_client import generate_latest

    scrape = generate_latest(_worker_metrics()).decode()
    assert mean_clip_seconds(scrape, "wan") == (90.0, 2)
    assert mean_clip_seconds(scrape, "riff-world") == (4.0, 1)
    with pytest.raises(ValueError, match="no succeeded clips of 'ltx'"):
        mean_clip_seconds(scrape, "ltx")


def test_the_command_reads_a_workers_metrics():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    start_http_server(port, addr="127.0.0.1", registry=_worker_metrics())
    out = io.StringIO()
    call_command(
        "generation_capacity",
        "--per-day", "10000",
        "--metrics-url", f"http://127.0.0.1:{port}/metrics",
        "--engine", "wan",
        stdout=out,
    )  # fmt: skip
    text = out.getvalue()
    assert "10000 generations a day at 90.00 s per clip (mean of 2 clips at" in text
    # 10,000 x 90 / 86,400 = 10.42 busy; x2 = 20.83 at the peak; / 0.8 -> 27 workers
    assert "busy on average   10.42 worker slots" in text
    assert "provision         27 workers" in text
    with pytest.raises(CommandError, match="no succeeded clips of 'ltx'"):
        call_command(
            "generation_capacity",
            "--per-day", "1",
            "--metrics-url", f"http://127.0.0.1:{port}/metrics",
            "--engine", "ltx",
        )  # fmt: skip
    with pytest.raises(CommandError, match="give one of --clip-seconds or --metrics-url"):
        call_command("generation_capacity", "--per-day", "1")

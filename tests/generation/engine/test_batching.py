"""Batching across jobs: concurrent single-request calls of a real (tiny) diffusers engine run
as one pipeline call, each member gets its own clip (the same as it would alone) and its own
progress, and a member whose job is cancelled leaves at once while the batch goes on."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from config.devtools import diffusers_models as tiny
from generation.engine.backends import (
    GenerationRequest,
    clear_engine_cache,
    get_engine,
    register_engine,
)
from generation.engine.backends.base import Engine
from generation.engine.backends.batching import BatchingEngine
from generation.engine.backends.diffusers_video import diffusers_engine

STEPS = 4


def engine() -> tuple:
    base = diffusers_engine(
        pipeline=tiny.wan(), height=tiny.HEIGHT, width=tiny.WIDTH, steps=STEPS, max_batch=4
    )
    calls: list[int] = []
    real = base.pipeline.__call__

    class Counting(type(base.pipeline)):
        def __call__(self, *args, **kwargs):
            calls.append(len(kwargs["prompt"]))
            return real(*args, **kwargs)

    base.pipeline.__class__ = Counting
    return base, calls


def request(seed: int) -> GenerationRequest:
    return GenerationRequest(f"a red ball number {seed}", seed=seed, frames=5)


def in_threads(
    batched: BatchingEngine, jobs: list[tuple[GenerationRequest, object]], ended=None
) -> list:
    """Runs each job's generate in a thread of its own, the first one first (it leads the
    batch); each thread's clip or exception, and in `ended` when each thread returned."""
    results: list = [None] * len(jobs)
    ended = ended if ended is not None else {}

    def run(index: int) -> None:
        req, progress = jobs[index]
        try:
            results[index] = batched.generate([req], progress)[0]
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            results[index] = exc
        ended[index] = time.monotonic()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(jobs))]
    for thread in threads:
        thread.start()
        time.sleep(0.02)  # arrive one after another, within the window
    for thread in threads:
        thread.join(60)
    return results


def test_concurrent_jobs_run_as_one_call_and_get_their_own_clips():
    alone, _ = engine()
    expected = [alone.generate([request(seed)])[0].frames for seed in (1, 2, 3)]
    base, calls = engine()
    batched = BatchingEngine(base, window=0.5, max_batch=4)
    seen: dict[int, list] = {1: [], 2: [], 3: []}
    clips = in_threads(
        batched,
        [(request(s), lambda d, t, s=s: seen[s].append((d, t))) for s in (1, 2, 3)],
    )
    assert calls == [3] and list(batched.batches) == [3]  # one pipeline call, a batch of three
    for clip, frames in zip(clips, expected, strict=True):
        assert clip.frames.shape == frames.shape == (5, tiny.HEIGHT, tiny.WIDTH, 3)
        # the same clip as alone (same seed, its own generator); batching adds float noise only
        assert np.abs(clip.frames.astype(int) - frames.astype(int)).max() <= 2
    assert seen[1] == seen[2] == seen[3] == [(i, STEPS) for i in range(1, STEPS + 1)]


class Cancelled(Exception):
    pass


def test_a_cancelled_member_leaves_at_once_and_the_batch_goes_on():
    base, calls = engine()
    batched = BatchingEngine(base, window=0.3, max_batch=4)
    steps_seen: list[int] = []

    def cancel_at_two(done: int, total: int) -> None:
        if done == 2:
            raise Cancelled()

    def slow(done: int, total: int) -> None:
        steps_seen.append(done)
        time.sleep(0.2)  # the leader's job takes its time: the follower must not wait for it

    ended: dict[int, float] = {}
    results = in_threads(batched, [(request(1), slow), (request(2), cancel_at_two)], ended)
    assert isinstance(results[1], Cancelled)
    assert results[0].frames.shape == (5, tiny.HEIGHT, tiny.WIDTH, 3)
    assert steps_seen == list(range(1, STEPS + 1))  # the leader's member ran to the end
    assert calls == [2]
    # the follower left at step 2, two slow steps before the batch ended
    assert ended[0] - ended[1] > 0.3


def test_when_every_member_leaves_the_engine_stops_between_steps():
    base, _ = engine()
    forwards: list[int] = []
    base.pipeline.transformer.register_forward_hook(lambda *a: forwards.append(1))
    batched = BatchingEngine(base, window=0.2, max_batch=4)

    def stop(done: int, total: int) -> None:
        raise Cancelled()

    results = in_threads(batched, [(request(1), stop), (request(2), stop)])
    assert all(isinstance(r, Cancelled) for r in results)
    # guidance doubles the forward passes of a step: one step ran, not four
    assert len(forwards) <= 2


def test_a_lone_job_waits_only_the_window():
    base, calls = engine()
    batched = BatchingEngine(base, window=0.2, max_batch=4)
    began = time.monotonic()
    (clip,) = batched.generate([request(7)])
    assert clip.frames.shape[0] == 5 and calls == [1] and list(batched.batches) == [1]
    assert time.monotonic() - began >= 0.2


def test_more_than_a_batch_runs_in_batches_and_nobody_is_left_waiting():
    base, calls = engine()
    batched = BatchingEngine(base, window=0.3, max_batch=2)
    results = in_threads(batched, [(request(s), None) for s in range(1, 6)])
    assert all(r.frames.shape[0] == 5 for r in results)
    assert sorted(batched.batches, reverse=True)[0] == 2 and sum(batched.batches) == 5
    assert sum(calls) == 5


def test_the_registry_wraps_any_backend_given_a_window():
    register_engine("batched-tiny", "riff-world", config="tiny", weights=None, steps=2)
    try:
        plain = get_engine("batched-tiny")
        batched = get_engine("batched-tiny", batch_window_ms=50, batch_size=3)
        assert not isinstance(plain, BatchingEngine)
        assert isinstance(batched, BatchingEngine) and batched.max_batch == 3
        assert isinstance(batched, Engine) and batched.name == plain.name
        assert batched.window == pytest.approx(0.05)
        assert (batched.fps, batched.height, batched.max_frames) == (
            plain.fps,
            plain.height,
            plain.max_frames,
        )
        (clip,) = batched.generate([GenerationRequest("a red ball", seed=1, frames=4)])
        assert clip.frames.shape[0] == 4
    finally:
        clear_engine_cache()

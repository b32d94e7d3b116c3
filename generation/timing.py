"""Where a job's time goes on the worker, stage by stage.

`generation_run` times each stage of a job with a `StageClock` and, when the job ends, logs one
line (`generation <id> stages {...}` on the `generation.timing` logger, JSON) and calls the
listeners registered here (`manage.py bench_generation --e2e` registers one when it runs the
worker in its own process; it reads the log line of a worker subprocess otherwise). The
stages, in order (docs/generation.md, "Benchmarks"):

    claim      the conditional UPDATE that takes the job, and reading it back
    checks     consent and the IP decision (with the semantic MiniLM check) before sampling
    model      getting the process's engine (a dictionary lookup once the worker is warm)
    inputs     cameo reference frames, instructions and remix context
    sampling   Engine.generate (text encoding included), the progress reports included
    progress   of which the progress reports (heartbeat writes and websocket events): the
               engine's own sampling time is `sampling - progress`
    verify     consent again after sampling, and the output checks on the frames
    frames     upscaling and watermarking every frame
    encode     H.264 MP4 (with faststart)
    sign       the C2PA manifest
    previews   the JPEG poster, the animated WebP preview, the sprite sheet and the engine
               frames (.npz)
    store      writing the five files through the storage API
    finish     the finishing transaction (transition, consent, video, appearances,
               notifications, claims) and, once it commits, the websocket event's publish

`started` (the task began) and `finished` (its outcome committed and the event published), in
Unix time, place the job on a clock other processes share; `cpu` is the CPU time the worker
process spent in between (all its threads): on a busy box the wall time grows and this does
not, when the slowdown is only the CPU share the job gets.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

logger = logging.getLogger("generation.timing")

Listener = Callable[[str, dict[str, Any]], None]
_LISTENERS: list[Listener] = []
_LOCK = threading.Lock()


class StageClock:
    """Seconds per named stage of one job (a stage entered twice adds up)."""

    def __init__(self) -> None:
        self.started = time.time()
        self._cpu_started = time.process_time()
        self.stages: dict[str, float] = {}
        self.finished: float | None = None
        self.cpu: float | None = None
        self.engine = ""  # the engine that ran the job, once it is claimed

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        began = time.perf_counter()
        try:
            yield
        finally:
            self.stages[name] = self.stages.get(name, 0.0) + time.perf_counter() - began

    def mark_finished(self) -> None:
        """The job's outcome is committed (and its event published): `finished` is now."""
        self.finished = time.time()
        self.cpu = time.process_time() - self._cpu_started

    def note(self, name: str, seconds: float) -> None:
        """Records time measured elsewhere (the progress reports inside `sampling`)."""
        self.stages[name] = self.stages.get(name, 0.0) + seconds

    def summary(self, outcome: str) -> dict[str, Any]:
        if self.finished is None:
            self.mark_finished()
        return {
            "outcome": outcome,
            "engine": self.engine,
            "started": round(self.started, 6),
            "finished": round(self.finished, 6),
            "cpu": round(self.cpu, 6),
            "stages": {name: round(seconds, 6) for name, seconds in self.stages.items()},
        }


class _NoClock(StageClock):
    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        yield


NO_CLOCK = _NoClock()


def report(job_id: str, clock: StageClock, outcome: str) -> None:
    """Logs the job's stages and hands them to the listeners (which must not raise)."""
    summary = clock.summary(outcome)
    logger.info("generation %s stages %s", job_id, json.dumps(summary, separators=(",", ":")))
    with _LOCK:
        listeners = list(_LISTENERS)
    for listener in listeners:
        try:
            listener(job_id, summary)
        except Exception:
            logger.exception("a generation timing listener failed")


def listen(listener: Listener) -> Callable[[], None]:
    """Registers `listener(job_id, summary)` for every job this process runs; returns the
    function that removes it."""
    with _LOCK:
        _LISTENERS.append(listener)

    def remove() -> None:
        with _LOCK:
            if listener in _LISTENERS:
                _LISTENERS.remove(listener)

    return remove

"""Batching across jobs: concurrent one-request `generate` calls run as one call of the engine.

A worker runs one job per thread (`generation_worker --capacity N`), and each job asks its
engine for its own clip. On a GPU, N clips in one batch cost far less than N calls one after
another, so `BatchingEngine` wraps an engine and gathers the calls that arrive together:

- the first caller leads: it waits `window` seconds for company (less once `max_batch` have
  come), then for the engine to be free, and takes everything that gathered meanwhile (up to
  `max_batch`) into one `generate` call of the wrapped engine, which groups and runs them its
  own way (diffusers: compatible requests in one pipeline call);
- every member sees the batch's progress through its own `on_progress`: it heartbeats its own
  job, and what it raises (its job was cancelled, its lease lost) drops that member at once,
  its thread leaves with that exception, and the batch goes on for the others. Only when every
  member has left is the batch itself stopped, between two steps;
- a batch that fails fails every member still in it with the same exception.

The leader's own thread runs the batch, so a leader whose job is cancelled mid-batch keeps
working until the batch ends for the others, and only then raises. Registered engines get it
with the option `batch_window_ms` (> 0) on any backend (the registry wraps what the factory
built); docs/operations.md, "Fleet".
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field

from .base import Engine, GeneratedClip, GenerationRequest, ProgressFn

logger = logging.getLogger("generation.worker")


@dataclass
class _Member:
    request: GenerationRequest
    on_progress: ProgressFn | None
    done: threading.Event = field(default_factory=threading.Event)
    clip: GeneratedClip | None = None
    error: BaseException | None = None

    def finish(self, *, clip: GeneratedClip | None = None, error: BaseException | None = None):
        if not self.done.is_set():
            self.clip, self.error = clip, error
            self.done.set()


class _AllLeft(Exception):
    """Every member of a batch has left: stop the engine between two steps."""


class BatchingEngine:
    """An `Engine` that runs concurrent single-request calls of `engine` as batches."""

    def __init__(self, engine: Engine, *, window: float, max_batch: int):
        self.engine = engine
        self.window = float(window)
        self.max_batch = max(1, int(max_batch))
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self._pending: list[_Member] = []
        self._leading = False  # a leader is gathering the pending calls
        self._running = threading.Lock()  # the wrapped engine runs one batch at a time
        self.batches: deque[int] = deque(maxlen=1000)  # sizes of the latest batches run

    # every other member (name, fps, height, width, max_context_frames, max_frames,
    # frame_size, ...) is the wrapped engine's
    def __getattr__(self, name: str):
        return getattr(self.engine, name)

    def generate(
        self, requests: list[GenerationRequest], on_progress: ProgressFn | None = None
    ) -> list[GeneratedClip]:
        if len(requests) != 1:  # already a batch: nothing to gather
            with self._running:
                return self.engine.generate(requests, on_progress)
        member = _Member(requests[0], on_progress)
        with self._lock:
            self._pending.append(member)
            self._arrived.notify_all()
            lead = not self._leading
            if lead:
                self._leading = True
        if lead:
            self._lead()
        member.done.wait()
        if member.error is not None:
            raise member.error
        return [member.clip]  # type: ignore[list-item]

    def _lead(self) -> None:
        deadline = time.monotonic() + self.window
        with self._lock:
            while len(self._pending) < self.max_batch:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._arrived.wait(left)
        with self._running:  # the previous batch ends; latecomers may still join this one
            with self._lock:
                batch, self._pending = (
                    self._pending[: self.max_batch],
                    self._pending[self.max_batch :],
                )
                # the next caller leads the next batch (and those left over join it)
                self._leading = False
                if self._pending:
                    self._leading = True
                    successor = True
                else:
                    successor = False
            try:
                self._run(batch)
            finally:
                if successor:
                    threading.Thread(target=self._lead, daemon=True).start()

    def _run(self, batch: list[_Member]) -> None:
        self.batches.append(len(batch))
        logger.info("%s: a batch of %d", self.engine.name, len(batch))

        def report(done: int, total: int) -> None:
            for member in batch:
                if member.done.is_set() or member.on_progress is None:
                    continue
                try:
                    member.on_progress(done, total)
                except BaseException as exc:  # that job was cancelled: it leaves now
                    member.finish(error=exc)
            if all(member.done.is_set() for member in batch):
                raise _AllLeft()

        try:
            clips = self.engine.generate([member.request for member in batch], report)
        except _AllLeft:
            return
        except BaseException as exc:
            for member in batch:
                member.finish(error=exc)
            return
        for member, clip in zip(batch, clips, strict=True):
            member.finish(clip=clip)

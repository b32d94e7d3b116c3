"""The generation job state machine: queued -> running -> succeeded | failed | cancelled.

`generation_transition` is the only writer of `status`. Workers claim a job with a conditional
UPDATE that bumps `attempts`; that number is the fencing token every later write of the worker
must present, so a worker whose lease expired (and whose job was re-queued and re-claimed) can
neither report progress nor finish it.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from accounts.realtime import send_to_user
from config.core.errors import Conflict
from config.core.states import StateMachine
from rights.services import credit_refund_for

from ..models import Generation, GenerationStatus
from ..webhooks.services import video_event_type, webhook_event_emit

logger = logging.getLogger(__name__)
G = GenerationStatus

JOB_STATES = StateMachine(
    "generation",
    {
        G.QUEUED: {G.RUNNING, G.CANCELLED, G.FAILED},
        # running -> queued is the retry after a lost worker or a transient engine error.
        G.RUNNING: {G.SUCCEEDED, G.FAILED, G.CANCELLED, G.QUEUED},
        G.SUCCEEDED: set(),
        G.FAILED: set(),
        G.CANCELLED: set(),
    },
)
TERMINAL = {G.SUCCEEDED, G.FAILED, G.CANCELLED}


class LostLease(Exception):
    """The worker no longer owns the job (cancelled, re-queued or taken over)."""


def _event(generation: Generation, kind: str) -> dict:
    return {
        "type": kind,
        "generation_id": str(generation.pk),
        "status": generation.status,
        "progress": round(generation.progress, 4),
        "error": {"code": generation.error_code, "message": generation.error_message}
        if generation.error_code
        else None,
    }


@transaction.atomic
def generation_transition(
    *,
    generation: Generation,
    to: str,
    attempt: int | None = None,
    error_code: str = "",
    error_message: str = "",
) -> Generation:
    """Moves a job to `to`. With `attempt`, only if that attempt still owns the job."""
    locked = Generation.objects.select_for_update().get(pk=generation.pk)
    if attempt is not None and (locked.attempts != attempt or locked.status != G.RUNNING):
        raise LostLease(str(locked.pk))
    JOB_STATES.check(locked.status, to)
    now = timezone.now()
    locked.status = to
    fields = ["status"]
    if to in TERMINAL:
        locked.completed_at, locked.lease_expires_at = now, None
        fields += ["completed_at", "lease_expires_at"]
    if to == G.SUCCEEDED:
        locked.progress = 1.0
        fields.append("progress")
    if to == G.QUEUED:
        locked.lease_expires_at, locked.worker, locked.progress = None, "", 0.0
        fields += ["lease_expires_at", "worker", "progress"]
    if error_code:
        locked.error_code, locked.error_message = error_code, error_message[:300]
        fields += ["error_code", "error_message"]
    locked.save(update_fields=fields)
    if to in (G.FAILED, G.CANCELLED):
        # A generation paid with a credit (beyond the daily quota) gives it back; the ledger's
        # reversal is once-only, and a job reaches a terminal state once.
        credit_refund_for(key=str(locked.pk))
    if to in (G.SUCCEEDED, G.FAILED, G.CANCELLED):
        kind = {
            G.SUCCEEDED: "generation.succeeded",
            G.FAILED: "generation.failed",
            G.CANCELLED: "generation.cancelled",
        }[to]
        send_to_user(locked.owner_id, _event(locked, kind))
    if to in (G.FAILED, G.CANCELLED):
        # Webhooks (docs/webhooks.md), in this transaction. A success is announced by the
        # worker once its video exists (generation.tasks), since a held video is a failure
        # to an integrator.
        webhook_event_emit(
            user_id=locked.owner_id,
            event_type=video_event_type(status=to),
            data={"id": str(locked.pk)},
        )
    generation.__dict__.update({f: getattr(locked, f) for f in fields})
    return locked


def generation_claim(*, generation_id) -> Generation | None:
    """Takes a queued job for this worker (conditional UPDATE through the state table; None
    when someone else has it or it is no longer queued). The job comes back with its owner."""
    now = timezone.now()
    lease = timedelta(seconds=settings.RIFF_GENERATION_LEASE_SECONDS)
    claimed = JOB_STATES.bulk(
        Generation.objects.filter(pk=generation_id),
        G.RUNNING,
        attempts=F("attempts") + 1,
        lease_expires_at=now + lease,
        started_at=now,
        worker=f"{socket.gethostname()}:{__import__('os').getpid()}"[:200],
        progress=0.0,
    )
    if not claimed:
        return None
    return Generation.objects.select_related("owner").get(pk=generation_id)


def generation_heartbeat(*, generation: Generation, progress: float) -> None:
    """Extends the lease and records progress; raises LostLease when the job isn't ours."""
    lease = timedelta(seconds=settings.RIFF_GENERATION_LEASE_SECONDS)
    updated = Generation.objects.filter(
        pk=generation.pk, status=G.RUNNING, attempts=generation.attempts
    ).update(progress=progress, lease_expires_at=timezone.now() + lease)
    if not updated:
        raise LostLease(str(generation.pk))
    generation.progress = progress
    send_to_user(generation.owner_id, _event(generation, "generation.progress"))


# How often a running job reports its progress (a database write that extends the lease and
# is the cancellation check, and a websocket event). A cancel is seen within this interval.
PROGRESS_EVERY_SECONDS = 0.2


class ProgressReporter:
    """The sampler's `on_progress(done, total)` for one job, without making the sampler wait.

    The callback only records the latest step; a thread of its own runs `generation_heartbeat`
    (progress scaled to at most 0.95, the lease, the cancellation check) for the first step at
    once and then at most every PROGRESS_EVERY_SECONDS, so the engine never waits on the
    database or the channel layer (a report costs milliseconds, a sampler step tens of them).
    A report that finds the job no longer ours (cancelled, re-queued, taken over) makes the
    next callback raise LostLease, which stops the sampler. `close()` (after sampling, also
    when it failed) sends the last step and stops the thread. `seconds`: what the callbacks
    cost the sampler.

    Called inside a transaction (a test running the task in its own), the reports are made in
    the calling thread, on the connection that holds it: another thread's connection could not
    see the job."""

    def __init__(self, job: Generation, *, every: float = PROGRESS_EVERY_SECONDS) -> None:
        from django.db import connection

        self.job = job
        self.every = every
        self.seconds = 0.0
        self._inline = connection.in_atomic_block
        self._last_inline: float | None = None
        self._lost: LostLease | None = None
        self._pending: tuple[int, int] | None = None
        self._closing = False
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None

    def __call__(self, done: int, total: int) -> None:
        began = time.perf_counter()
        if self._lost is not None:
            raise self._lost
        if self._inline:
            if self._last_inline is None or began - self._last_inline >= self.every:
                self._last_inline = began
                generation_heartbeat(
                    generation=self.job, progress=min(0.95, 0.9 * done / max(1, total))
                )
            self.seconds += time.perf_counter() - began
            return
        with self._changed:
            self._pending = (done, total)
            self._changed.notify()
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name=f"progress-{self.job.pk}", daemon=True
            )
            self._thread.start()
        self.seconds += time.perf_counter() - began

    def close(self) -> None:
        with self._changed:
            self._closing = True
            self._changed.notify()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        from django.db import connection

        last = 0.0
        try:
            while True:
                with self._changed:
                    while self._pending is None and not self._closing:
                        self._changed.wait()
                    if self._pending is None:
                        return
                    wait = last + self.every - time.monotonic()
                    if wait > 0 and not self._closing:
                        self._changed.wait(wait)
                        continue
                    done, total = self._pending
                    self._pending = None
                last = time.monotonic()
                try:
                    generation_heartbeat(
                        generation=self.job, progress=min(0.95, 0.9 * done / max(1, total))
                    )
                except LostLease:
                    raise
                except Exception:
                    # A failed report (the database restarting) costs this progress event;
                    # the next one tries again, and the heartbeat after sampling is the
                    # task's own.
                    logger.warning(
                        "generation %s: progress report failed", self.job.pk, exc_info=True
                    )
        except LostLease as exc:
            self._lost = exc
        finally:
            connection.close()  # this thread's own connection


def generation_cancel(*, generation: Generation) -> Generation:
    if generation.status in TERMINAL:
        raise Conflict(
            f"This generation is already {generation.status}.", code="invalid_transition"
        )
    return generation_transition(
        generation=generation, to=G.CANCELLED, error_code="cancelled", error_message="Cancelled."
    )


def generation_reap(*, max_attempts: int | None = None) -> dict[str, int]:
    """Beat task body: expired leases are re-queued (or failed after the last attempt), and
    queued jobs nobody picked up are sent again."""
    from ..dispatch import dispatch_after_commit, send

    max_attempts = max_attempts or settings.RIFF_GENERATION_MAX_ATTEMPTS
    now = timezone.now()
    requeued = failed = resent = 0
    for job in Generation.objects.filter(status=G.RUNNING, lease_expires_at__lt=now):
        try:
            if job.attempts >= max_attempts:
                generation_transition(
                    generation=job,
                    to=G.FAILED,
                    attempt=job.attempts,
                    error_code="worker_lost",
                    error_message="The worker stopped responding too many times.",
                )
                failed += 1
            else:
                generation_transition(generation=job, to=G.QUEUED, attempt=job.attempts)
                dispatch_after_commit(job)
                requeued += 1
        except (LostLease, Conflict):
            continue
    stale = now - timedelta(seconds=settings.RIFF_DISPATCH_RESEND_AFTER)
    for pk, model, size in Generation.objects.filter(
        status=G.QUEUED, dispatched_at__lt=stale
    ).values_list("pk", "model", "size"):
        send(pk, model=model, size=size)
        resent += 1
    for pk, model, size in Generation.objects.filter(
        status=G.QUEUED, dispatched_at__isnull=True, created_at__lt=stale
    ).values_list("pk", "model", "size"):
        send(pk, model=model, size=size)
        resent += 1
    return {"requeued": requeued, "failed": failed, "resent": resent}

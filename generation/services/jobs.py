"""The generation job state machine: queued -> running -> succeeded | failed | cancelled.

`generation_transition` is the only writer of `status`. Workers claim a job with a conditional
UPDATE that bumps `attempts`; that number is the fencing token every later write of the worker
must present, so a worker whose lease expired (and whose job was re-queued and re-claimed) can
neither report progress nor finish it.
"""

from __future__ import annotations

import logging
import socket
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
    generation.__dict__.update({f: getattr(locked, f) for f in fields})
    return locked


def generation_claim(*, generation_id) -> Generation | None:
    """Takes a queued job for this worker (conditional UPDATE through the state table; None
    when someone else has it or it is no longer queued)."""
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
    return Generation.objects.get(pk=generation_id)


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
    for pk in Generation.objects.filter(status=G.QUEUED, dispatched_at__lt=stale).values_list(
        "pk", flat=True
    ):
        send(pk)
        resent += 1
    for pk in Generation.objects.filter(
        status=G.QUEUED, dispatched_at__isnull=True, created_at__lt=stale
    ).values_list("pk", flat=True):
        send(pk)
        resent += 1
    return {"requeued": requeued, "failed": failed, "resent": resent}

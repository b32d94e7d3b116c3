"""Getting queued jobs to the `gpu` queue, exactly when their row is committed.

`dispatch_after_commit` sends the task from an on_commit hook; if the process dies between
commit and send, the beat task `generation_sweep` re-sends every job still queued after
`RIFF_DISPATCH_RESEND_AFTER` seconds. A re-send is harmless: the worker's claim is a
conditional UPDATE, so a job runs once however many messages arrive.
"""

from __future__ import annotations

import logging

from django.db import transaction
from django.utils import timezone

from .models import Generation

logger = logging.getLogger(__name__)


def send(generation_id) -> None:
    from .tasks import generation_run

    Generation.objects.filter(pk=generation_id).update(dispatched_at=timezone.now())
    generation_run.apply_async(args=[str(generation_id)], queue="gpu")


def dispatch_after_commit(generation: Generation) -> None:
    generation_id = generation.pk

    def _send():
        try:
            send(generation_id)
        except Exception:  # the sweeper will re-send it
            logger.warning(
                "dispatch of %s failed; the sweeper will retry", generation_id, exc_info=True
            )

    transaction.on_commit(_send)

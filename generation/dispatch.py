"""Getting queued jobs to their engine's queue (`gpu`, or the one settings route the job's
engine to), exactly when their row is committed.

`dispatch_after_commit` sends the task from an on_commit hook. A job whose message could not be
sent (the broker, Redis, is down: publishing gives up within seconds, config.core.redis.publish)
stays `queued` with no `dispatched_at`, and so does one whose process died between commit and
send: the beat task `generation_sweep` re-sends every job still queued after
`RIFF_DISPATCH_RESEND_AFTER` seconds. A re-send is harmless: the worker's claim is a
conditional UPDATE, so a job runs once however many messages arrive.
"""

from __future__ import annotations

import logging

from django.db import transaction
from django.utils import timezone

from config.core.errors import BACKEND_DOWN_ERRORS
from config.core.redis import degraded, publish
from config.core.routing import generation_route

from .models import Generation, GenerationStatus

logger = logging.getLogger(__name__)


def send(generation_id, *, model: str, size: str = "", stamped: bool = False) -> None:
    """Publishes the job's message to its engine's queue (`model`, `size`: the job's, which
    config.core.routing maps to a queue); raises kombu's OperationalError when the
    broker is down.

    `dispatched_at` is stamped before publishing (a worker may claim the job the moment the
    message lands, and the dispatch latency is measured from it) and cleared again when the
    broker refused the message, so that only a job with a message out carries it. `stamped`:
    the row was written with it already (admission stamps it in its INSERT, saving a round
    trip; a process that dies before publishing leaves a stamped job the sweeper re-sends
    after RIFF_DISPATCH_RESEND_AFTER, as it would an unstamped one).
    """
    from .tasks import generation_run

    # The queryset is built only when it is written through: admission's jobs come stamped
    # and their publish succeeds, and building one was a third of that send's CPU.
    if not stamped:
        Generation.objects.filter(pk=generation_id).update(dispatched_at=timezone.now())
    try:
        publish(generation_run, str(generation_id), **generation_route(model=model, size=size))
    except Exception:
        Generation.objects.filter(pk=generation_id, status=GenerationStatus.QUEUED).update(
            dispatched_at=None
        )
        raise


def dispatch_after_commit(generation: Generation, *, stamped: bool = False) -> None:
    generation_id, model, size = generation.pk, generation.model, generation.size

    def _send():
        # The job is committed either way; the sweeper re-sends what was not sent.
        try:
            send(generation_id, model=model, size=size, stamped=stamped)
        except BACKEND_DOWN_ERRORS:
            degraded("generation_dispatch", generation_id)
        except Exception:
            logger.warning(
                "dispatch of %s failed; the sweeper will re-send it", generation_id, exc_info=True
            )

    transaction.on_commit(_send)

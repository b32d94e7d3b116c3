"""Webhook delivery on the `default` queue (routes: config.celery.TASK_QUEUES).

`webhook_deliver` makes one attempt (generation.webhooks.delivery) and, when the attempt failed
and another is due later, sends itself again with that countdown. Messages are only a nudge:
the row says what is due, so a duplicate message finds nothing to do and a lost one is sent
again by `webhook_sweep` (beat, every 30 s).
"""

from __future__ import annotations

from celery import shared_task

from config.core.errors import BACKEND_DOWN_ERRORS
from config.core.redis import degraded, publish

from .delivery import deliveries_due, delivery_attempt


@shared_task(name="generation.webhooks.tasks.webhook_deliver")
def webhook_deliver(delivery_id: str) -> str:
    outcome = delivery_attempt(delivery_id=delivery_id)
    if outcome.retry_in is not None:
        try:
            publish(webhook_deliver, delivery_id, countdown=outcome.retry_in)
        except BACKEND_DOWN_ERRORS:
            degraded("webhook_deliver", delivery_id)  # the sweep sends it once it is due
    return outcome.result


@shared_task(name="generation.webhooks.tasks.webhook_sweep")
def webhook_sweep() -> int:
    sent = 0
    for delivery_id in deliveries_due():
        try:
            publish(webhook_deliver, str(delivery_id))
        except BACKEND_DOWN_ERRORS:
            degraded("webhook_sweep", delivery_id)
            break  # the broker is down: the next sweep tries again
        sent += 1
    return sent

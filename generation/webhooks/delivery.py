"""Delivering one webhook event to one endpoint: the delivery state machine and one attempt.

    pending -> succeeded | failed;  succeeded | failed -> pending (a manual redelivery)

An attempt is three steps, and only the first and last touch the database, each in a short
transaction of its own, so no row lock or transaction stays open during the HTTP call:

1. claim: lock the row (SKIP LOCKED: a concurrent run just moves on), go on only if it is
   pending and due, count the attempt and push `next_attempt_at` past the call's deadline
   (a lease: a concurrent run or the sweep finds it not due);
2. the POST (urls_guard.vet, then transport.post), signed with a fresh `webhook-timestamp`;
3. record: only if the row is still the one claimed (same `attempts`, still pending), as
   succeeded (2xx), or failed after the last of RIFF_WEBHOOK_RETRY_DELAYS, or pending and due
   again after the next delay (the task sends itself again with that countdown).

A worker that dies between 1 and 3 leaves a pending row whose lease runs out; the sweep sends
it again and the lost attempt counts as one.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from config.core.states import StateMachine

from ..models import WebhookDelivery, WebhookDeliveryState
from . import transport
from .signing import signature_header
from .urls_guard import UrlNotAllowed, vet

logger = logging.getLogger(__name__)
D = WebhookDeliveryState

DELIVERY_STATES = StateMachine(
    "webhook delivery",
    {
        D.PENDING: {D.SUCCEEDED, D.FAILED},
        D.SUCCEEDED: {D.PENDING},
        D.FAILED: {D.PENDING},
    },
    field="state",
)

USER_AGENT = "Riff-Webhooks/1"
# The lease outlasts the call's deadline by this much (the DNS lookup before it, clock skew).
LEASE_MARGIN_SECONDS = 30
# The sweep leaves a due delivery this long to its own message before sending another.
SWEEP_GRACE_SECONDS = 60
SWEEP_BATCH = 500
# The body's keys in the order the spec lists them (the stored JSON keeps no order).
PAYLOAD_KEYS = ("id", "object", "created_at", "type", "data")


@transaction.atomic
def webhook_delivery_transition(
    *, delivery: WebhookDelivery, to: str, **fields: Any
) -> WebhookDelivery:
    """Moves a delivery to `to` (and writes `fields` with it): the only writer of `state`."""
    locked = WebhookDelivery.objects.select_for_update().get(pk=delivery.pk)
    DELIVERY_STATES.check(locked.state, to)
    locked.state = to
    for name, value in fields.items():
        setattr(locked, name, value)
    locked.save(update_fields=["state", *fields])
    delivery.__dict__.update({name: getattr(locked, name) for name in ("state", *fields)})
    return locked


def max_attempts() -> int:
    return len(settings.RIFF_WEBHOOK_RETRY_DELAYS) + 1


def body_of(payload: dict[str, Any]) -> bytes:
    ordered = {key: payload[key] for key in PAYLOAD_KEYS if key in payload}
    return json.dumps(ordered, separators=(",", ":")).encode()


def signing_secrets(endpoint, *, now=None) -> list[str]:
    """The secrets that sign a message now: the endpoint's, and during a rotation's grace
    period the previous one too."""
    now = now or timezone.now()
    secrets = [endpoint.secret]
    expires = endpoint.previous_secret_expires_at
    if endpoint.previous_secret and expires is not None and expires > now:
        secrets.append(endpoint.previous_secret)
    return secrets


@dataclass(frozen=True)
class _Claim:
    delivery_id: Any
    attempt: int
    url: str
    event_id: str
    body: bytes
    secrets: list[str]


@dataclass(frozen=True)
class Outcome:
    """What one run of the task did; `retry_in`: seconds until the next attempt is due."""

    result: str  # skipped | succeeded | retrying | failed | superseded
    retry_in: float | None = None


def _claim(delivery_id) -> _Claim | None:
    with transaction.atomic():
        delivery = (
            WebhookDelivery.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("endpoint")
            .filter(pk=delivery_id)
            .first()
        )
        if delivery is None or delivery.state != D.PENDING:
            return None  # gone, done, or another run holds it
        now = timezone.now()
        if delivery.next_attempt_at is not None and delivery.next_attempt_at > now:
            return None  # not due yet, or an attempt is in flight
        endpoint = delivery.endpoint
        if endpoint.disabled_at is not None:
            webhook_delivery_transition(
                delivery=delivery,
                to=D.FAILED,
                next_attempt_at=None,
                last_error="The endpoint is disabled.",
            )
            return None
        if delivery.attempts >= max_attempts():
            # The last attempt was lost with its worker: nothing is left to try.
            webhook_delivery_transition(
                delivery=delivery,
                to=D.FAILED,
                next_attempt_at=None,
                last_error=delivery.last_error or "The last attempt did not finish.",
            )
            return None
        lease = settings.RIFF_WEBHOOK_TIMEOUT_SECONDS + LEASE_MARGIN_SECONDS
        delivery.attempts += 1
        delivery.next_attempt_at = now + timedelta(seconds=lease)
        delivery.save(update_fields=["attempts", "next_attempt_at"])
        return _Claim(
            delivery_id=delivery.pk,
            attempt=delivery.attempts,
            url=endpoint.url,
            event_id=delivery.event_id,
            body=body_of(delivery.payload),
            secrets=signing_secrets(endpoint, now=now),
        )


def _send(claim: _Claim) -> transport.Answer:
    timestamp = int(time.time())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "webhook-id": claim.event_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature_header(
            secrets=claim.secrets, msg_id=claim.event_id, timestamp=timestamp, body=claim.body
        ),
    }
    try:
        # Resolved and checked again now: the name may point somewhere else than it did at
        # registration. The connection goes to exactly the addresses checked here.
        target = vet(claim.url)
    except UrlNotAllowed as exc:
        return transport.Answer(status=None, error=f"Not sent: {exc}")
    return transport.post(
        target, body=claim.body, headers=headers, timeout=settings.RIFF_WEBHOOK_TIMEOUT_SECONDS
    )


def _record(claim: _Claim, answer: transport.Answer) -> Outcome:
    text = answer.body.decode("utf-8", "replace").replace("\x00", "")[: transport.RESPONSE_BYTES]
    if answer.ok:
        error = ""
    elif answer.status is not None:
        error = f"The endpoint answered {answer.status}."
    else:
        error = answer.error or "The request failed."
    fields = {
        "last_status_code": answer.status,
        "last_error": error[:300],
        "last_response": text,
    }
    now = timezone.now()
    with transaction.atomic():
        delivery = (
            WebhookDelivery.objects.select_for_update()
            .filter(pk=claim.delivery_id, state=D.PENDING, attempts=claim.attempt)
            .first()
        )
        if delivery is None:
            return Outcome("superseded")  # deleted, or taken over after the lease ran out
        if answer.ok:
            webhook_delivery_transition(
                delivery=delivery, to=D.SUCCEEDED, delivered_at=now, next_attempt_at=None, **fields
            )
            return Outcome("succeeded")
        delays = settings.RIFF_WEBHOOK_RETRY_DELAYS
        if claim.attempt <= len(delays):
            delay = delays[claim.attempt - 1]
            # Still pending: a new due time is not a change of state.
            for name, value in fields.items():
                setattr(delivery, name, value)
            delivery.next_attempt_at = now + timedelta(seconds=delay)
            delivery.save(update_fields=[*fields, "next_attempt_at"])
            return Outcome("retrying", retry_in=delay)
        webhook_delivery_transition(delivery=delivery, to=D.FAILED, next_attempt_at=None, **fields)
        return Outcome("failed")


def delivery_attempt(*, delivery_id) -> Outcome:
    """One attempt at a delivery, if it is pending and due (the task's body; idempotent: a
    delivery that is done, not due or being attempted elsewhere is left alone)."""
    claim = _claim(delivery_id)
    if claim is None:
        return Outcome("skipped")
    answer = _send(claim)
    outcome = _record(claim, answer)
    logger.info(
        "webhook delivery %s attempt %d: %s (%s)",
        claim.delivery_id,
        claim.attempt,
        outcome.result,
        answer.status if answer.status is not None else answer.error,
    )
    return outcome


def deliveries_due(*, limit: int = SWEEP_BATCH) -> list:
    """Pending deliveries due for longer than SWEEP_GRACE_SECONDS: their message was lost
    (the broker was down, a worker died mid-attempt)."""
    stale = timezone.now() - timedelta(seconds=SWEEP_GRACE_SECONDS)
    return list(
        WebhookDelivery.objects.filter(state=D.PENDING, next_attempt_at__lt=stale)
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:limit]
    )

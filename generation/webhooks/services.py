"""Webhook writes: endpoints (register, delete, rotate the secret), events and redelivery.

Delivery itself is generation.webhooks.delivery, run by the tasks; everything here that
queues a delivery does it after commit (config.core.redis.enqueue_after_commit), and the sweep
sends what the broker did not take.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from config.core.errors import Conflict, Invalid
from config.core.redis import enqueue_after_commit

from ..models import (
    GenerationStatus,
    WebhookDelivery,
    WebhookDeliveryState,
    WebhookEndpoint,
    WebhookEvent,
)
from .delivery import webhook_delivery_transition
from .signing import secret_generate
from .tasks import webhook_deliver
from .urls_guard import UrlNotAllowed, vet

EVENT_TYPES = tuple(WebhookEvent.values)


def _events_checked(events: object) -> list[str]:
    def refuse(message: str) -> Invalid:
        return Invalid(message, fields={"events": [message]})

    if not isinstance(events, list | tuple) or not events:
        raise refuse(f"events is a non-empty list of {', '.join(EVENT_TYPES)}.")
    if any(not isinstance(event, str) or event not in EVENT_TYPES for event in events):
        raise refuse(f"Each event is one of {', '.join(EVENT_TYPES)}.")
    if len(set(events)) != len(events):
        raise refuse("Each event may be listed once.")
    return list(events)


def _url_checked(url: str) -> str:
    try:
        vet(url)
    except UrlNotAllowed as exc:
        raise Invalid(str(exc), code="webhook_url_not_allowed", fields={"url": [str(exc)]})
    return url


def webhook_endpoint_create(*, user, url: str, events: Sequence[str]) -> WebhookEndpoint:
    """Registers an endpoint; the returned row carries its secret (shown once). Refuses a URL
    the SSRF guard refuses (400 `webhook_url_not_allowed`) and a user at
    RIFF_WEBHOOKS_PER_USER endpoints (409 `too_many_webhooks`)."""
    events = _events_checked(events)
    # The DNS lookup happens before any lock is taken.
    url = _url_checked(url)
    with transaction.atomic():
        # Concurrent registrations by one user queue on the user row, so the cap holds.
        get_user_model().objects.select_for_update().filter(pk=user.pk).first()
        cap = settings.RIFF_WEBHOOKS_PER_USER
        if WebhookEndpoint.objects.filter(user=user).count() >= cap:
            raise Conflict(
                f"You have {cap} webhook endpoints already; delete one first.",
                code="too_many_webhooks",
            )
        return WebhookEndpoint.objects.create(
            user=user, url=url, events=events, secret=secret_generate()
        )


def webhook_endpoint_delete(*, endpoint: WebhookEndpoint) -> None:
    """Deletes the endpoint and its delivery log; deliveries still queued find nothing."""
    endpoint.delete()


@transaction.atomic
def webhook_secret_rotate(*, endpoint: WebhookEndpoint) -> WebhookEndpoint:
    """A new secret signs from now on; the current one signs next to it for
    RIFF_WEBHOOK_ROTATION_GRACE_SECONDS, so receivers can switch without losing a message.
    Rotating again within the grace period drops the oldest secret at once."""
    locked = WebhookEndpoint.objects.select_for_update().get(pk=endpoint.pk)
    grace = timedelta(seconds=settings.RIFF_WEBHOOK_ROTATION_GRACE_SECONDS)
    locked.previous_secret = locked.secret
    locked.previous_secret_expires_at = timezone.now() + grace
    locked.secret = secret_generate()
    locked.save(update_fields=["secret", "previous_secret", "previous_secret_expires_at"])
    return locked


@transaction.atomic
def webhook_endpoint_disable(*, endpoint: WebhookEndpoint) -> None:
    """Staff stop deliveries to an endpoint (pending ones fail at their next attempt)."""
    WebhookEndpoint.objects.filter(pk=endpoint.pk, disabled_at__isnull=True).update(
        disabled_at=timezone.now()
    )


def webhook_event_emit(
    *, user_id, event_type: str, data: Mapping[str, Any]
) -> list[WebhookDelivery]:
    """One delivery per enabled endpoint of the user subscribed to the event, written in the
    caller's transaction (so an event exists exactly when the change it reports committed),
    each sent after commit. Costs one (indexed) query when the user has no endpoint."""
    endpoints = list(
        WebhookEndpoint.objects.filter(user_id=user_id, disabled_at__isnull=True).only(
            "id", "events"
        )
    )
    if not endpoints:
        return []
    return _deliveries_create(
        user_id=user_id, event_type=event_type, data=data, endpoints=endpoints
    )


def _deliveries_create(
    *,
    user_id,
    event_type: str,
    data: Mapping[str, Any],
    endpoints: list[WebhookEndpoint] | None = None,
) -> list[WebhookDelivery]:
    event_type = WebhookEvent(event_type).value  # ValueError for an unknown type
    if endpoints is None:
        endpoints = list(
            WebhookEndpoint.objects.filter(user_id=user_id, disabled_at__isnull=True).only(
                "id", "events"
            )
        )
    now = timezone.now()
    event_id = f"evt_{uuid.uuid4().hex}"
    payload = {
        "id": event_id,
        "object": "event",
        "created_at": int(now.timestamp()),
        "type": event_type,
        "data": dict(data),
    }
    deliveries = WebhookDelivery.objects.bulk_create(
        WebhookDelivery(
            endpoint_id=endpoint.pk,
            event_id=event_id,
            event_type=event_type,
            payload=payload,
            next_attempt_at=now,
            created_at=now,
        )
        for endpoint in endpoints
        if event_type in endpoint.events
    )
    for delivery in deliveries:
        enqueue_after_commit(webhook_deliver, str(delivery.pk), component="webhook_deliver")
    return deliveries


@transaction.atomic
def webhook_redeliver(*, delivery: WebhookDelivery) -> WebhookDelivery:
    """Sends a succeeded or failed delivery again, now, with the same event id (the
    `webhook-id`, so a receiver that has it already can tell), on a fresh retry schedule.
    A pending one is already being delivered: 409 `invalid_transition`."""
    delivery = webhook_delivery_transition(
        delivery=delivery,
        to=WebhookDeliveryState.PENDING,
        attempts=0,
        next_attempt_at=timezone.now(),
        delivered_at=None,
    )
    enqueue_after_commit(webhook_deliver, str(delivery.pk), component="webhook_deliver")
    return delivery


def video_event_type(*, status: str, held: bool = False) -> str:
    """The webhook event of a generation reaching the terminal `status`: `video.completed`,
    `video.failed` or `video.cancelled`. A succeeded job whose video is `held` (moderation is
    reviewing it) is `video.failed` to an integrator, who can't fetch it."""
    if status == GenerationStatus.SUCCEEDED:
        return WebhookEvent.VIDEO_FAILED if held else WebhookEvent.VIDEO_COMPLETED
    return {
        GenerationStatus.FAILED: WebhookEvent.VIDEO_FAILED,
        GenerationStatus.CANCELLED: WebhookEvent.VIDEO_CANCELLED,
    }[status]

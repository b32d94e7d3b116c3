"""Webhook reads, scoped to the caller: another user's endpoint or delivery is a 404."""

from __future__ import annotations

from django.db.models import QuerySet

from config.core.errors import NotFound

from ..models import WebhookDelivery, WebhookEndpoint


def webhook_endpoints_of(*, user) -> QuerySet[WebhookEndpoint]:
    return WebhookEndpoint.objects.filter(user=user)


def webhook_endpoint_of(*, user, webhook_id) -> WebhookEndpoint:
    endpoint = webhook_endpoints_of(user=user).filter(pk=webhook_id).first()
    if endpoint is None:
        raise NotFound("No such webhook.")
    return endpoint


def webhook_deliveries_of(*, endpoint: WebhookEndpoint) -> QuerySet[WebhookDelivery]:
    return WebhookDelivery.objects.filter(endpoint=endpoint)


def webhook_delivery_of(*, endpoint: WebhookEndpoint, delivery_id) -> WebhookDelivery:
    delivery = webhook_deliveries_of(endpoint=endpoint).filter(pk=delivery_id).first()
    if delivery is None:
        raise NotFound("No such delivery.")
    return delivery

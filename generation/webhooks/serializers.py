from __future__ import annotations

from rest_framework import serializers

from config.core.fields import InputSerializer, OutputModelSerializer, StrictCharField

from ..models import WebhookDelivery, WebhookEndpoint, WebhookEvent
from .urls_guard import MAX_URL_CHARS

# The event names as their own labels: a choice set distinct from the model field's (whose
# labels are "Video Completed"...), so the schema names it once, `EventsEnum`, next to the
# delivery's `EventTypeEnum`, without an ENUM_NAME_OVERRIDES entry.
EVENT_CHOICES = [(value, value) for value in WebhookEvent.values]


class WebhookEndpointIn(InputSerializer):
    url = StrictCharField(
        max_length=MAX_URL_CHARS,
        help_text="An https (or http) URL on a public host; private, loopback and link-local "
        "addresses are refused with `webhook_url_not_allowed`.",
    )
    events = serializers.ListField(
        child=serializers.ChoiceField(choices=EVENT_CHOICES),
        min_length=1,
        max_length=len(EVENT_CHOICES),
        help_text="The events to receive, each at most once.",
    )

    def validate_events(self, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise serializers.ValidationError("Each event may be listed once.")
        return value


class WebhookEndpointOut(OutputModelSerializer):
    events = serializers.ListField(child=serializers.ChoiceField(choices=EVENT_CHOICES))

    class Meta:
        model = WebhookEndpoint
        fields = ["id", "url", "events", "created_at"]


class WebhookEndpointSecretOut(WebhookEndpointOut):
    secret = serializers.CharField(
        help_text="`whsec_` and the base64 signing key. Shown only here: keep it."
    )

    class Meta:
        model = WebhookEndpoint
        fields = ["id", "url", "events", "secret", "created_at"]


class WebhookDeliveryOut(OutputModelSerializer):
    # A plain string in the schema: an enum named after the field would rename the video's
    # `StateEnum`, which generated clients use (drf-spectacular prefixes colliding names).
    state = serializers.CharField(
        help_text="`pending` (being delivered or waiting for a retry), `succeeded` or `failed`."
    )

    class Meta:
        model = WebhookDelivery
        fields = [
            "id",
            "event_id",
            "event_type",
            "state",
            "attempts",
            "last_status_code",
            "last_error",
            "created_at",
            "delivered_at",
            "next_attempt_at",
        ]

"""Bodies of the reports and moderation endpoints (API.md "Reports and moderation")."""

from __future__ import annotations

from rest_framework import serializers

from config.core.fields import InputSerializer, StrictCharField, StrictUUIDField

from .models import EventType, Reason, SubjectType, TicketStatus
from .services import MAX_DETAILS

# What the event endpoint takes: everything but resolve_appeal (the appeal endpoints' own).
EVENT_TYPES = [t for t in EventType.values if t != EventType.RESOLVE_APPEAL]


class ReportIn(InputSerializer):
    subject_type = serializers.ChoiceField(choices=SubjectType.values)
    subject_id = StrictCharField(max_length=64)
    reason = serializers.ChoiceField(choices=Reason.values)
    details = StrictCharField(max_length=MAX_DETAILS, required=False, allow_blank=True)


class ReportOut(serializers.Serializer):
    id = serializers.UUIDField()
    subject_type = serializers.CharField()
    subject_id = serializers.CharField()
    reason = serializers.CharField()
    status = serializers.CharField(help_text="open | assigned | escalated | closed")
    outcome = serializers.CharField(help_text="'' until closed, then actioned | no_action")
    created_at = serializers.DateTimeField()


class ReportTicketReportOut(serializers.Serializer):
    id = serializers.UUIDField()
    reporter = serializers.CharField(allow_null=True)
    reason = serializers.CharField()
    details = serializers.CharField()
    muted = serializers.BooleanField()
    created_at = serializers.DateTimeField()


class ReportTicketOut(serializers.Serializer):
    id = serializers.UUIDField(help_text="The ticket: every report on one subject.")
    subject_type = serializers.CharField()
    subject_id = serializers.CharField()
    queue = serializers.CharField()
    reason = serializers.CharField(help_text="The most severe reason reported.")
    status = serializers.CharField(help_text="open | assigned | escalated | closed")
    priority = serializers.IntegerField()
    reporter_count = serializers.IntegerField()
    likeness_self = serializers.BooleanField(
        help_text="A cameo owner reported a video showing their likeness."
    )
    assignee = serializers.CharField(allow_null=True)
    outcome = serializers.CharField()
    report_ids = serializers.ListField(child=serializers.UUIDField())
    reports = ReportTicketReportOut(many=True)
    opened_at = serializers.DateTimeField()
    closed_at = serializers.DateTimeField(allow_null=True)


class AssignIn(InputSerializer):
    username = StrictCharField(max_length=30, required=False)


class EventIn(InputSerializer):
    subject_type = serializers.ChoiceField(choices=SubjectType.values)
    subject_id = StrictCharField(max_length=64)
    type = serializers.ChoiceField(choices=EVENT_TYPES)
    reason = StrictCharField(max_length=2000, required=False, allow_blank=True)
    duration_hours = serializers.IntegerField(min_value=1, max_value=24 * 365 * 10, required=False)
    report_ids = serializers.ListField(child=StrictUUIDField(), required=False, max_length=100)
    external_id = StrictCharField(max_length=200, required=False)
    label = serializers.RegexField(
        r"^[a-z0-9][a-z0-9_-]{0,63}\Z", required=False, help_text="For `label`: e.g. `graphic`."
    )


class EventOut(serializers.Serializer):
    id = serializers.UUIDField()
    subject_type = serializers.CharField()
    subject_id = serializers.CharField()
    type = serializers.CharField()
    reason = serializers.CharField()
    actor = serializers.CharField(allow_null=True, help_text="Username; null: the system.")
    duration_hours = serializers.IntegerField(allow_null=True)
    expires_at = serializers.DateTimeField(allow_null=True)
    label = serializers.CharField()
    report_ids = serializers.ListField(child=serializers.UUIDField())
    external_id = serializers.CharField(allow_null=True)
    target_id = serializers.UUIDField(allow_null=True, help_text="resolve_appeal: the event.")
    approved = serializers.BooleanField(allow_null=True)
    created_at = serializers.DateTimeField()


class StrikeOut(serializers.Serializer):
    event_id = serializers.UUIDField()
    expires_at = serializers.DateTimeField(allow_null=True)


class StatusOut(serializers.Serializer):
    taken_down = serializers.BooleanField()
    takedown_until = serializers.DateTimeField(allow_null=True)
    labels = serializers.ListField(child=serializers.CharField())
    escalated = serializers.BooleanField()
    strikes = StrikeOut(many=True, help_text="Strikes in force now.")
    suspended_until = serializers.DateTimeField(allow_null=True)
    banned = serializers.BooleanField()
    muted = serializers.BooleanField()
    cameo_revoked = serializers.BooleanField()
    event_count = serializers.IntegerField()


class SubjectOut(serializers.Serializer):
    subject_type = serializers.CharField()
    subject_id = serializers.CharField()
    owner = serializers.CharField(allow_null=True)
    status = StatusOut()
    events = EventOut(many=True)
    tickets = ReportTicketOut(many=True)


class AppealIn(InputSerializer):
    event_id = StrictUUIDField()
    text = StrictCharField(max_length=4000)


class AppealOut(serializers.Serializer):
    id = serializers.UUIDField()
    event_id = serializers.UUIDField()
    status = serializers.CharField(help_text="pending | approved | rejected")
    text = serializers.CharField()
    created_at = serializers.DateTimeField()
    decided_at = serializers.DateTimeField(allow_null=True)


class AppealDecisionIn(InputSerializer):
    reason = StrictCharField(max_length=2000, required=False, allow_blank=True)


TICKET_STATUSES = TicketStatus.values

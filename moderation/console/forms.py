"""Console forms. Every action needs a reason, whatever the event type (the API requires one
only for takedowns, strikes, suspensions and bans; people working a queue all day write why
they did everything, and the history shows it)."""

from __future__ import annotations

import uuid

from django import forms

from ..models import Reason, TicketStatus
from ..selectors import QUEUE_NAMES

MAX_DURATION_HOURS = 24 * 365


class ReasonField(forms.CharField):
    def __init__(self, **kwargs):
        kwargs.setdefault("max_length", 2000)
        kwargs.setdefault("strip", True)
        kwargs.setdefault("error_messages", {"required": "Say why: a reason is required."})
        super().__init__(required=True, **kwargs)


class ActionForm(forms.Form):
    reason = ReasonField()
    duration_hours = forms.IntegerField(required=False, min_value=1, max_value=MAX_DURATION_HOURS)
    label = forms.CharField(required=False, max_length=64, strip=True)

    def __init__(self, *args, action, **kwargs):
        super().__init__(*args, **kwargs)
        self.action = action
        if action.label:
            self.fields["label"].required = True


class BulkAcknowledgeForm(forms.Form):
    tickets = forms.CharField(required=True)  # one or more ticket ids (a multi-value field)
    reason = ReasonField()

    def ticket_ids(self) -> list[uuid.UUID]:
        out = []
        for raw in self.data.getlist("tickets"):
            try:
                out.append(uuid.UUID(raw))
            except ValueError:
                continue
        return out


class AppealDecisionForm(forms.Form):
    decision = forms.ChoiceField(choices=[("approve", "Approve"), ("reject", "Reject")])
    reason = ReasonField()


class QueueFilterForm(forms.Form):
    status = forms.ChoiceField(
        required=False,
        choices=[("", "not closed"), *[(s, s) for s in TicketStatus.values]],
    )
    queue = forms.ChoiceField(
        required=False, choices=[("", "all queues")] + [(q, q) for q in QUEUE_NAMES]
    )
    reason = forms.ChoiceField(
        required=False, choices=[("", "all reasons")] + [(r, r) for r in Reason.values]
    )

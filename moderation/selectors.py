"""Moderation reads: tickets for the queue, a subject's page, the shapes the API returns."""

from __future__ import annotations

from typing import Any

from django.db.models import Prefetch, QuerySet

from config.core.errors import Invalid

from .models import Appeal, ModerationEvent, Report, SubjectStatus, Ticket, TicketStatus
from .services import QUEUES, strikes_in_force
from .subjects import Subject

QUEUE_NAMES = sorted(set(QUEUES.values()) | {"accounts", "output_check"})


def tickets(*, status: str | None, work_queue: str | None, reason: str | None) -> QuerySet[Ticket]:
    """The queue: by priority, highest first. No `status`: everything not closed. Tickets whose
    only reports came from muted reporters are never shown."""
    qs = Ticket.objects.filter(reporter_count__gt=0).select_related("assignee")
    qs = qs.prefetch_related(
        Prefetch(
            "reports", queryset=Report.objects.select_related("reporter").order_by("created_at")
        )
    )
    if status is None:
        qs = qs.exclude(status=TicketStatus.CLOSED)
    elif status in TicketStatus.values:
        qs = qs.filter(status=status)
    else:
        raise Invalid("Unknown status.", fields={"status": ["Invalid."]})
    if work_queue is not None:
        if work_queue not in QUEUE_NAMES:
            raise Invalid("Unknown queue.", fields={"queue": ["Invalid."]})
        qs = qs.filter(work_queue=work_queue)
    if reason is not None:
        qs = qs.filter(reports__reason=reason).distinct()
    return qs


def report_out(report: Report) -> dict[str, Any]:
    ticket = report.ticket
    return {
        "id": report.pk,
        "subject_type": report.subject_type,
        "subject_id": report.subject_id,
        "reason": report.reason,
        # A muted reporter's report looks like any other from their side.
        "status": ticket.status,
        "outcome": ticket.outcome,
        "created_at": report.created_at,
    }


def ticket_out(ticket: Ticket) -> dict[str, Any]:
    reports = list(ticket.reports.all())
    return {
        "id": ticket.pk,
        "subject_type": ticket.subject_type,
        "subject_id": ticket.subject_id,
        "queue": ticket.work_queue,
        "reason": ticket.reason,
        "status": ticket.status,
        "priority": ticket.priority,
        "reporter_count": ticket.reporter_count,
        "likeness_self": ticket.likeness_self,
        "assignee": ticket.assignee.username if ticket.assignee else None,
        "outcome": ticket.outcome,
        "report_ids": [r.pk for r in reports],
        "reports": [
            {
                "id": r.pk,
                "reporter": r.reporter.username if r.reporter else None,
                "reason": r.reason,
                "details": r.details,
                "muted": r.muted,
                "created_at": r.created_at,
            }
            for r in reports
        ],
        "opened_at": ticket.opened_at,
        "closed_at": ticket.closed_at,
    }


def event_out(event: ModerationEvent) -> dict[str, Any]:
    return {
        "id": event.public_id,
        "subject_type": event.subject_type,
        "subject_id": event.subject_id,
        "type": event.type,
        "reason": event.reason,
        "actor": event.actor_name or None,
        "duration_hours": event.duration_hours,
        "expires_at": event.expires_at,
        "label": event.label,
        "report_ids": event.report_ids,
        "external_id": event.external_id,
        "target_id": event.target.public_id if event.target_id else None,
        "approved": event.approved,
        "created_at": event.created_at,
    }


def status_out(status: SubjectStatus | None) -> dict[str, Any]:
    if status is None:
        status = SubjectStatus()
    public = dict(
        ModerationEvent.objects.filter(pk__in=[s[0] for s in status.strikes]).values_list(
            "pk", "public_id"
        )
    )
    return {
        "taken_down": status.taken_down,
        "takedown_until": status.takedown_until,
        "labels": list(status.labels),
        "escalated": status.escalated,
        "strikes": [
            {"event_id": public[s["event_pk"]], "expires_at": s["expires_at"]}
            for s in strikes_in_force(status)
            if s["event_pk"] in public
        ],
        "suspended_until": status.suspended_until,
        "banned": status.banned,
        "muted": status.muted,
        "cameo_revoked": status.cameo_revoked,
        "event_count": status.event_count,
    }


def subject_out(subject: Subject) -> dict[str, Any]:
    status = SubjectStatus.objects.filter(subject_type=subject.type, subject_id=subject.id).first()
    events = (
        ModerationEvent.objects.filter(subject_type=subject.type, subject_id=subject.id)
        .select_related("target")
        .order_by("id")
    )
    found = (
        Ticket.objects.filter(subject_type=subject.type, subject_id=subject.id)
        .select_related("assignee")
        .prefetch_related(Prefetch("reports", queryset=Report.objects.select_related("reporter")))
    )
    return {
        "subject_type": subject.type,
        "subject_id": subject.id,
        "owner": subject.owner.username if subject.owner else None,
        "status": status_out(status),
        "events": [event_out(e) for e in events],
        "tickets": [ticket_out(t) for t in found.order_by("-opened_at")],
    }


def appeal_out(appeal: Appeal) -> dict[str, Any]:
    return {
        "id": appeal.pk,
        "event_id": appeal.event.public_id,
        "status": appeal.status,
        "text": appeal.text,
        "created_at": appeal.created_at,
        "decided_at": appeal.decided_at,
    }

"""Moderation writes: reports and tickets, the one event service, appeals (docs/moderation.md).

- `report_create`: one report per reporter and subject; reports on one subject gather in one
  open ticket, routed to a queue by reason and ranked by `priority`.
- `event_record`: every moderation action. Checks the actor's role, applies the action through
  the existing paths (takedowns through generation/feed, bans through accounts and cameos),
  appends the event, rebuilds the subject's status from all its events, closes the reports it
  answers and tells the people concerned.
- `appeal_create` / `appeal_decide`: approving records a `resolve_appeal` event that undoes the
  appealed action through the same service.
"""

from __future__ import annotations

import math
import uuid
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.admin.models import CHANGE, LogEntry
from django.db import IntegrityError, transaction
from django.db.models import Count, Q
from django.utils import timezone

from accounts.models import User
from accounts.services import notification_create, user_suspend, user_unsuspend
from accounts.tokens import token_revoke_all
from cameos.models import Cameo
from cameos.services import cameo_revoke
from config.core.errors import Conflict, Forbidden, Invalid, NotFound
from config.core.states import StateMachine
from feed.services import comment_restore, comment_takedown, post_restore, post_takedown
from generation.services.videos import video_restore, video_takedown

from .models import (
    Appeal,
    AppealStatus,
    EventType,
    ModerationEvent,
    Outcome,
    Reason,
    Report,
    SubjectStatus,
    SubjectType,
    Ticket,
    TicketStatus,
)
from .projection import project
from .subjects import Subject, reach, shows_cameo_of, subject_for_reporter, subject_get

E, T, TS = EventType, SubjectType, TicketStatus

# --- roles ----------------------------------------------------------------------------------

ROLES = ("triage", "moderator", "admin")  # staff groups, each with everything before it


def role_of(user) -> str | None:
    """The highest moderation role of `user`: a superuser is admin; staff need a group."""
    if not getattr(user, "is_authenticated", False) or not user.is_active:
        return None
    if user.is_superuser:
        return "admin"
    if not user.is_staff:
        return None
    names = set(user.groups.values_list("name", flat=True))
    found = [role for role in ROLES if role in names]
    return found[-1] if found else None


def require_role(user, needed: str) -> str:
    role = role_of(user)
    if role is None or ROLES.index(role) < ROLES.index(needed):
        raise Forbidden(f"This needs the {needed} role.")
    return role


# Who may record what (API.md "Reports and moderation").
EVENT_ROLE = {
    E.NOTE: "triage",
    E.ESCALATE: "triage",
    E.ACKNOWLEDGE: "moderator",
    E.LABEL: "moderator",
    E.TAKEDOWN: "moderator",
    E.REVERSE_TAKEDOWN: "moderator",
    E.STRIKE: "moderator",
    E.SUSPEND: "moderator",
    E.REVOKE_CAMEO: "moderator",
    E.MUTE_REPORTER: "moderator",
    E.BAN: "admin",
    E.UNBAN: "admin",
}
REASON_REQUIRED = {E.TAKEDOWN, E.STRIKE, E.SUSPEND, E.BAN}
# What each action applies to.
APPLIES_TO = {
    E.TAKEDOWN: {T.POST, T.VIDEO, T.COMMENT, T.GENERATION},
    E.REVERSE_TAKEDOWN: {T.POST, T.VIDEO, T.COMMENT, T.GENERATION},
    E.STRIKE: {T.USER},
    E.SUSPEND: {T.USER},
    E.BAN: {T.USER},
    E.UNBAN: {T.USER},
    E.MUTE_REPORTER: {T.USER},
    E.REVOKE_CAMEO: {T.CAMEO},
}
# Actions that answer the reports they name with "actioned" (acknowledge: "no action").
ACTIONS = {
    E.TAKEDOWN,
    E.LABEL,
    E.STRIKE,
    E.SUSPEND,
    E.BAN,
    E.REVOKE_CAMEO,
}
# Actions that settle a subject: every open report on it is answered.
SETTLES = {E.TAKEDOWN, E.BAN, E.REVOKE_CAMEO, E.ACKNOWLEDGE}
APPEALABLE = {E.TAKEDOWN, E.LABEL, E.STRIKE, E.SUSPEND, E.BAN, E.MUTE_REPORTER}

# --- reports and tickets --------------------------------------------------------------------

SEVERITY = {
    Reason.MINOR_SAFETY: 100,
    Reason.SEXUAL_DEEPFAKE: 90,
    Reason.LIKENESS_MISUSE: 80,
    Reason.SELF_HARM: 70,
    Reason.VIOLENCE: 60,
    Reason.HATE: 50,
    Reason.HARASSMENT: 40,
    Reason.MISLEADING_SYNTHETIC: 30,
    Reason.IP_INFRINGEMENT: 20,
    Reason.SPAM: 10,
    Reason.OTHER: 5,
}
LIKENESS_REASONS = {Reason.LIKENESS_MISUSE, Reason.SEXUAL_DEEPFAKE}
QUEUES = {
    Reason.MINOR_SAFETY: "child_safety",
    Reason.SEXUAL_DEEPFAKE: "likeness",
    Reason.LIKENESS_MISUSE: "likeness",
    Reason.SELF_HARM: "harm",
    Reason.VIOLENCE: "harm",
    Reason.HATE: "harm",
    Reason.HARASSMENT: "harm",
    Reason.MISLEADING_SYNTHETIC: "synthetic",
    Reason.IP_INFRINGEMENT: "rights",
    Reason.SPAM: "spam",
    Reason.OTHER: "general",
}
LIKENESS_SELF_BONUS = 1000
MAX_DETAILS = 2000

TICKET_STATES = StateMachine(
    "report",
    {
        TS.OPEN: {TS.ASSIGNED, TS.ESCALATED, TS.CLOSED},
        TS.ASSIGNED: {TS.OPEN, TS.ESCALATED, TS.CLOSED},
        TS.ESCALATED: {TS.ASSIGNED, TS.CLOSED},
        TS.CLOSED: {TS.OPEN},
    },
)


def queue_for(reason: str, subject_type: str) -> str:
    if subject_type == T.CAMEO and reason in LIKENESS_REASONS:
        return "likeness"
    if subject_type == T.USER and reason in (Reason.SPAM, Reason.OTHER):
        return "accounts"
    return QUEUES[reason]


def reporter_accuracy(user_ids) -> dict:
    """How often each reporter's decided reports led to an action, (actioned+1)/(decided+2),
    for all of them in one query (0.5 for a reporter with no decided reports)."""
    rows = (
        Report.objects.filter(reporter_id__in=[u for u in user_ids if u is not None])
        .filter(ticket__status=TS.CLOSED)
        .values("reporter_id")
        .annotate(n=Count("id"), a=Count("id", filter=Q(ticket__outcome=Outcome.ACTIONED)))
    )
    found = {r["reporter_id"]: (r["a"] + 1) / (r["n"] + 2) for r in rows}
    return {u: found.get(u, 0.5) for u in user_ids}


def ticket_priority(ticket: Ticket, subject: Subject) -> int:
    """Points: the worst reason's severity, plus distinct reporters weighted by how often
    their reports were right (log-scaled), plus the subject's reach (log-scaled), plus a jump
    to the front for a likeness report by the person in the video. docs/moderation.md."""
    reports = list(ticket.reports.filter(muted=False).values_list("reporter_id", flat=True))
    # 1.0 for an unknown reporter, up to 2 for a reliable one.
    weight = sum(2 * accuracy for accuracy in reporter_accuracy(set(reports)).values())
    points = (
        SEVERITY[ticket.reason] + 20 * math.log2(1 + weight) + 5 * math.log10(1 + reach(subject))
    )
    if ticket.likeness_self:
        points += LIKENESS_SELF_BONUS
    return round(points)


@transaction.atomic
def report_create(
    *, reporter: User, subject_type: str, subject_id: str, reason: str, details: str = ""
) -> tuple[Report, bool]:
    """(report, created). The same reporter and subject again returns the first report."""
    subject = subject_for_reporter(reporter, subject_type, subject_id)
    existing = Report.objects.filter(
        reporter=reporter, subject_type=subject.type, subject_id=subject.id
    ).first()
    if existing is not None:
        return existing, False
    details = details.strip()
    if len(details) > MAX_DETAILS:
        raise Invalid("details are too long.", fields={"details": ["Too long."]})
    muted = SubjectStatus.objects.filter(
        subject_type=T.USER, subject_id=str(reporter.pk), muted=True
    ).exists()
    ticket = _open_ticket(subject, reason)
    try:
        with transaction.atomic():
            report = Report.objects.create(
                reporter=reporter,
                subject_type=subject.type,
                subject_id=subject.id,
                reason=reason,
                details=details,
                ticket=ticket,
                muted=muted,
            )
    except IntegrityError:  # the same report sent twice at once
        return Report.objects.get(
            reporter=reporter, subject_type=subject.type, subject_id=subject.id
        ), False
    if not muted:
        if SEVERITY[reason] > SEVERITY[ticket.reason]:
            ticket.reason, ticket.work_queue = reason, queue_for(reason, subject.type)
        if reason in LIKENESS_REASONS and shows_cameo_of(subject, reporter):
            ticket.likeness_self = True
        ticket.reporter_count = ticket.reports.filter(muted=False).count()
        ticket.priority = ticket_priority(ticket, subject)
        ticket.updated_at = timezone.now()
        ticket.save()
    return report, True


def _open_ticket(subject: Subject, reason: str) -> Ticket:
    """The subject's ticket that is not closed (locked), or a new open one."""
    found = (
        Ticket.objects.select_for_update()
        .filter(subject_type=subject.type, subject_id=subject.id)
        .exclude(status=TS.CLOSED)
        .first()
    )
    if found is not None:
        return found
    try:
        with transaction.atomic():
            return Ticket.objects.create(
                subject_type=subject.type,
                subject_id=subject.id,
                reason=reason,
                work_queue=queue_for(reason, subject.type),
            )
    except IntegrityError:  # another report opened it first
        return (
            Ticket.objects.select_for_update()
            .filter(subject_type=subject.type, subject_id=subject.id)
            .exclude(status=TS.CLOSED)
            .get()
        )


@transaction.atomic
def ticket_transition(
    *, ticket: Ticket, to: str, assignee: User | None = None, outcome: str = ""
) -> Ticket:
    """The only writer of a ticket's status."""
    locked = Ticket.objects.select_for_update().get(pk=ticket.pk)
    TICKET_STATES.check(locked.status, to)
    now = timezone.now()
    locked.status, locked.updated_at = to, now
    if to == TS.ASSIGNED:
        locked.assignee = assignee
    if to == TS.CLOSED:
        locked.closed_at, locked.outcome = now, outcome or Outcome.NO_ACTION
    if to == TS.OPEN:
        locked.closed_at, locked.outcome, locked.assignee = None, "", None
    locked.save()
    if to == TS.CLOSED:
        _tell_reporters(locked)
    return locked


def ticket_assign(*, ticket: Ticket, assignee: User, actor: User) -> Ticket:
    """Assigns to `assignee` (a moderation role is needed to hold a ticket)."""
    require_role(actor, "triage")
    if role_of(assignee) is None:
        raise Invalid(
            "Only staff with a moderation role hold reports.", fields={"username": ["No role."]}
        )
    if ticket.status == TS.ASSIGNED and ticket.assignee_id == assignee.pk:
        return ticket
    if ticket.status == TS.ASSIGNED:  # re-assigning: back to open first, in one transaction
        with transaction.atomic():
            ticket_transition(ticket=ticket, to=TS.OPEN)
            return ticket_transition(ticket=ticket, to=TS.ASSIGNED, assignee=assignee)
    return ticket_transition(ticket=ticket, to=TS.ASSIGNED, assignee=assignee)


def _tell_reporters(ticket: Ticket) -> None:
    for report in ticket.reports.select_related("reporter").exclude(reporter=None):
        notification_create(
            recipient=report.reporter,
            kind="report.resolved",
            data={
                "report_id": str(report.pk),
                "subject_type": ticket.subject_type,
                "subject_id": ticket.subject_id,
                "outcome": ticket.outcome,
            },
        )


# --- events ---------------------------------------------------------------------------------


def _status_row(subject_type: str, subject_id: str) -> SubjectStatus:
    SubjectStatus.objects.get_or_create(subject_type=subject_type, subject_id=subject_id)
    return SubjectStatus.objects.select_for_update().get(
        subject_type=subject_type, subject_id=subject_id
    )


def status_rebuild(subject_type: str, subject_id: str) -> SubjectStatus:
    """Recomputes the stored status from every event of the subject (inside the caller's
    transaction, the row locked)."""
    row = _status_row(subject_type, subject_id)
    events = list(
        ModerationEvent.objects.filter(subject_type=subject_type, subject_id=subject_id).order_by(
            "id"
        )
    )
    for name, value in project(events).as_fields().items():
        setattr(row, name, value)
    row.last_event = events[-1] if events else None
    row.updated_at = timezone.now()
    row.save()
    return row


def _apply(subject: Subject, kind: str, *, reason: str, actor, until) -> None:
    """Carries the action out through the paths the rest of Riff already uses."""
    obj = subject.obj
    if kind in (E.TAKEDOWN, E.REVERSE_TAKEDOWN):
        down = kind == E.TAKEDOWN
        text = f"taken down by moderation: {reason}"[:200]
        if subject.type == T.COMMENT:
            comment_takedown(comment=obj, reason=text) if down else comment_restore(comment=obj)
            return
        post = subject.post
        if post is not None:
            post_takedown(post=post, reason=text) if down else post_restore(post=post)
            return
        video = subject.video
        if video is None:
            raise Conflict("There is no video to take down.", code="invalid_transition")
        video_takedown(video=video, reason=text) if down else video_restore(video=video)
    elif kind == E.SUSPEND:
        user_suspend(user=obj, until=until)
    elif kind == E.BAN:
        _ban(obj, actor, reason)
    elif kind == E.UNBAN:
        User.objects.filter(pk=obj.pk).update(is_active=True)
    elif kind == E.REVOKE_CAMEO:
        cameo_revoke(cameo=obj, actor=actor, reason=f"revoked by moderation: {reason}"[:200])


def _ban(user: User, actor, reason: str) -> None:
    """A ban ends every session and revokes every cameo (their videos go with them)."""
    User.objects.filter(pk=user.pk).update(is_active=False)
    token_revoke_all(user=user)
    for cameo in Cameo.objects.filter(owner=user):
        cameo_revoke(cameo=cameo, actor=actor, reason="the account was banned")


def _undo(subject: Subject, appealed: ModerationEvent, actor) -> None:
    """What approving an appeal of `appealed` changes outside the event log."""
    if appealed.type == E.TAKEDOWN:
        _apply(subject, E.REVERSE_TAKEDOWN, reason="appeal approved", actor=actor, until=None)
    elif appealed.type == E.SUSPEND:
        user_unsuspend(user=subject.obj)
    elif appealed.type == E.BAN:
        User.objects.filter(pk=subject.obj.pk).update(is_active=True)


@transaction.atomic
def event_record(
    *,
    actor: User | None,
    subject_type: str,
    subject_id: str,
    type: str,  # noqa: A002 - the API's field name
    reason: str = "",
    duration_hours: int | None = None,
    report_ids: list | None = None,
    external_id: str | None = None,
    label: str = "",
    target: ModerationEvent | None = None,
    approved: bool | None = None,
) -> tuple[ModerationEvent, bool]:
    """(event, created). A repeated `external_id` returns the first event (created False)."""
    if external_id:
        found = ModerationEvent.objects.filter(external_id=external_id).first()
        if found is not None:
            return found, False
    if actor is not None and type != E.RESOLVE_APPEAL:
        require_role(actor, EVENT_ROLE[type])
    reason = (reason or "").strip()
    if type in REASON_REQUIRED and not reason:
        raise Invalid(f"A {type} needs a reason.", fields={"reason": ["Required."]})
    allowed = APPLIES_TO.get(type)
    if allowed is not None and subject_type not in allowed:
        raise Invalid(
            f"A {type} applies to: {', '.join(sorted(allowed))}.",
            fields={"subject_type": ["Not for this action."]},
        )
    if type == E.LABEL and not label:
        raise Invalid("A label needs its `label`.", fields={"label": ["Required."]})
    subject = _subject_or_gone(subject_type, subject_id, type)
    status = _status_row(subject.type, subject.id)
    if actor is not None and subject.type == T.USER and subject.owner == actor:
        raise Forbidden("Nobody moderates their own account.")
    reports = _reports_for(report_ids or [], subject)
    now = timezone.now()
    expires_at = None
    if duration_hours:
        expires_at = now + timedelta(hours=duration_hours)
    elif type == E.STRIKE:
        expires_at = now + timedelta(days=settings.RIFF_STRIKE_DAYS)
    elif type == E.SUSPEND:
        expires_at = now + timedelta(hours=settings.RIFF_SUSPEND_DEFAULT_HOURS)
    if type == E.TAKEDOWN and status.taken_down:
        raise Conflict("It is taken down already.", code="invalid_transition")
    if type == E.REVERSE_TAKEDOWN and not status.taken_down:
        raise Conflict("It is not taken down.", code="invalid_transition")
    _apply(subject, type, reason=reason, actor=actor, until=expires_at)
    if type == E.RESOLVE_APPEAL and approved and target is not None:
        _undo(subject, target, actor)
    try:
        with transaction.atomic():
            event = ModerationEvent.objects.create(
                subject_type=subject.type,
                subject_id=subject.id,
                type=type,
                reason=reason,
                actor=actor,
                actor_name=getattr(actor, "username", "") or "",
                duration_hours=duration_hours,
                expires_at=expires_at,
                label=label,
                report_ids=[str(r.pk) for r in reports],
                external_id=external_id or None,
                target=target,
                approved=approved,
            )
    except IntegrityError:
        found = ModerationEvent.objects.filter(external_id=external_id).first()
        if found is None:
            raise
        transaction.set_rollback(True)  # the side effects above belong to the first one
        return found, False
    status_rebuild(subject.type, subject.id)
    _after(event, subject, reports)
    _admin_log(event, subject)
    return event, True


def _admin_log(event: ModerationEvent, subject: Subject) -> None:
    """The admin's "Recent actions" and each object's history show moderation too (the event
    log stays the record; this is a pointer to it for people working in /admin/)."""
    if event.actor_id is None or subject.obj is None:
        return
    model = type(subject.obj)
    LogEntry.objects.log_actions(
        event.actor_id,
        model.objects.filter(pk=subject.obj.pk),
        CHANGE,
        change_message=f"moderation {event.type}: {event.reason}"[:500],
        single_object=True,
    )


def _subject_or_gone(subject_type: str, subject_id: str, kind: str) -> Subject:
    """The subject; for a note, an escalation or an acknowledgement, also one that was deleted
    since it was reported (its tickets must still be closable)."""
    try:
        return subject_get(subject_type, subject_id)
    except NotFound:
        subject_id = str(uuid.UUID(str(subject_id)))  # subject_get has checked its form
        known = Ticket.objects.filter(subject_type=subject_type, subject_id=subject_id).exists()
        if kind in (E.NOTE, E.ESCALATE, E.ACKNOWLEDGE) and known:
            return Subject(subject_type, subject_id, None, None)
        raise


def _reports_for(report_ids: list, subject: Subject) -> list[Report]:
    """The named reports, which must be about this subject."""
    if not report_ids:
        return []
    reports = list(Report.objects.filter(pk__in=report_ids).select_related("ticket"))
    if len(reports) != len(set(map(str, report_ids))) or any(
        (r.subject_type, r.subject_id) != (subject.type, subject.id) for r in reports
    ):
        raise Invalid(
            "report_ids must name reports about this subject.", fields={"report_ids": ["Invalid."]}
        )
    return reports


def _after(event: ModerationEvent, subject: Subject, reports: list[Report]) -> None:
    """Tickets and notifications that follow an event."""
    open_tickets = Ticket.objects.filter(subject_type=subject.type, subject_id=subject.id).exclude(
        status=TS.CLOSED
    )
    if event.type == E.ESCALATE:
        for ticket in open_tickets.exclude(status=TS.ESCALATED):
            ticket_transition(ticket=ticket, to=TS.ESCALATED)
    if event.type not in (E.NOTE, E.ESCALATE):
        # The reports it names are answered; an action that settles the subject (or an
        # acknowledgement that nothing is wrong) answers every open report on it.
        tickets = {r.ticket for r in reports}
        if event.type in SETTLES:
            tickets |= set(open_tickets)
        outcome = Outcome.ACTIONED if event.type in ACTIONS else Outcome.NO_ACTION
        for ticket in tickets:
            if ticket.status != TS.CLOSED:
                ticket_transition(ticket=ticket, to=TS.CLOSED, outcome=outcome)
    if event.type in APPEALABLE and subject.owner is not None and event.actor_id is not None:
        notification_create(
            recipient=subject.owner,
            kind="moderation.action",
            data={
                "event_id": str(event.public_id),
                "type": event.type,
                "subject_type": subject.type,
                "subject_id": subject.id,
                "reason": event.reason,
                "appeal_until": (event.created_at + appeal_window()).isoformat(),
            },
        )


# --- appeals --------------------------------------------------------------------------------


def appeal_window() -> timedelta:
    return timedelta(days=settings.RIFF_APPEAL_WINDOW_DAYS)


@transaction.atomic
def appeal_create(*, user: User, event_id, text: str) -> Appeal:
    """The actioned user appeals one event, once, within the window."""
    event = ModerationEvent.objects.filter(public_id=event_id).first()
    subject = None
    if event is not None:
        try:
            subject = subject_get(event.subject_type, event.subject_id)
        except NotFound:
            subject = None
    if event is None or subject is None or subject.owner is None or subject.owner.pk != user.pk:
        raise NotFound("No such action.", fields={"event_id": ["No such action on you."]})
    if event.type not in APPEALABLE:
        raise Invalid("This action can't be appealed.", fields={"event_id": ["Not appealable."]})
    if timezone.now() > event.created_at + appeal_window():
        raise Conflict("The time to appeal this has passed.", code="appeal_window_closed")
    text = text.strip()
    if not text:
        raise Invalid("Say why.", fields={"text": ["Required."]})
    try:
        with transaction.atomic():
            return Appeal.objects.create(event=event, appellant=user, text=text[:4000])
    except IntegrityError:
        raise Conflict("This action was appealed already.", code="already_appealed") from None


@transaction.atomic
def appeal_decide(*, appeal: Appeal, actor: User, approve: bool, reason: str = "") -> Appeal:
    """Approving reverses the action through event_record (a `resolve_appeal` event)."""
    require_role(actor, "moderator")
    locked = Appeal.objects.select_for_update().select_related("event").get(pk=appeal.pk)
    if locked.status != AppealStatus.PENDING:
        raise Conflict("This appeal was decided already.", code="invalid_transition")
    target = locked.event
    decision, _ = event_record(
        actor=actor,
        subject_type=target.subject_type,
        subject_id=target.subject_id,
        type=E.RESOLVE_APPEAL,
        reason=reason or ("appeal approved" if approve else "appeal rejected"),
        target=target,
        approved=approve,
    )
    locked.status = AppealStatus.APPROVED if approve else AppealStatus.REJECTED
    locked.decided_by, locked.decided_at, locked.decision = actor, timezone.now(), decision
    locked.save()
    if locked.appellant is not None:
        notification_create(
            recipient=locked.appellant,
            kind="appeal.decided",
            data={"appeal_id": str(locked.pk), "status": locked.status},
        )
    return locked


# --- timed actions ----------------------------------------------------------------------------


def takedowns_expire(*, now=None) -> int:
    """Ends takedowns whose time is up (a `reverse_takedown` by the system). Beat task."""
    now = now or timezone.now()
    due = SubjectStatus.objects.filter(taken_down=True, takedown_until__lte=now)
    count = 0
    for status in due.values_list("subject_type", "subject_id"):
        try:
            event_record(
                actor=None,
                subject_type=status[0],
                subject_id=status[1],
                type=E.REVERSE_TAKEDOWN,
                reason="the takedown's time is up",
            )
            count += 1
        except (Conflict, NotFound):
            continue
    return count


def strikes_in_force(status: SubjectStatus, *, now=None) -> list[dict[str, Any]]:
    now = now or timezone.now()
    out = []
    for event_pk, expires in status.strikes:
        until = None if expires is None else timezone.datetime.fromisoformat(expires)
        if until is None or until > now:
            out.append({"event_pk": event_pk, "expires_at": until})
    return out

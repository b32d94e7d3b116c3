"""The moderation console (docs/moderation-console.md): the queue, a report's page with its
actions, appeals and the dashboard, behind the admin's staff login.

Thin like the API: each view checks the role (`moderation.services.require_role`; a staff user
with no moderation role gets 403), parses a form, calls one moderation service
(`event_record`, `ticket_assign`, `appeal_decide`) and redirects with a message. A service's
refusal (an `ApiError`) becomes an error message, never a half-done action. Every action needs
a reason and a confirmation: the page asks inline (console.js); without JavaScript, or when the
confirmation is missing, the server answers a confirmation page first.
"""

from __future__ import annotations

from functools import wraps
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from config.core.errors import ApiError, Forbidden

from ..models import Appeal, AppealStatus, EventType, Ticket, TicketStatus
from ..selectors import event_out, ticket_out, tickets
from ..services import ROLES, appeal_decide, event_record, require_role, role_of, ticket_assign
from . import dashboard as stats
from .actions import ACTIONS, available, target_of
from .forms import ActionForm, AppealDecisionForm, BulkAcknowledgeForm, QueueFilterForm
from .media import video_file
from .reads import next_ticket, report_page, subject_summaries

PAGE_SIZE = 50


def console_view(role: str):
    """Staff login (the admin's), then at least `role`; otherwise a 403 page."""

    def decorate(view):
        @wraps(view)
        def inner(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            try:
                request.console_role = require_role(request.user, role)
            except Forbidden as exc:
                return _forbidden(request, str(exc.detail))
            # What the navigation and the pages may offer this person.
            rank = ROLES.index(request.console_role)
            request.console_may = {r: rank >= ROLES.index(r) for r in ROLES}
            return view(request, *args, **kwargs)

        return staff_member_required(never_cache(inner), login_url="admin:login")

    return decorate


def _forbidden(request: HttpRequest, message: str) -> HttpResponse:
    return render(
        request,
        "moderation/console/forbidden.html",
        {"message": message, "role": role_of(request.user)},
        status=403,
    )


def _ticket(ticket_id) -> Ticket:
    ticket = Ticket.objects.select_related("assignee").filter(pk=ticket_id).first()
    if ticket is None:
        raise Http404("No such report.")
    return ticket


def _back(request: HttpRequest, fallback: str) -> str:
    target = request.POST.get("next") or ""
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return fallback


def _confirm(request: HttpRequest, *, title: str, what: str, cancel: str) -> HttpResponse:
    """The second step when the inline confirmation was skipped: the same POST again, with
    `confirm=yes`."""
    fields = [
        (name, value)
        for name in request.POST
        if name not in ("csrfmiddlewaretoken", "confirm")
        for value in request.POST.getlist(name)
    ]
    return render(
        request,
        "moderation/console/confirm.html",
        {"title": title, "what": what, "fields": fields, "action": request.path, "cancel": cancel},
    )


def _confirmed(request: HttpRequest) -> bool:
    return request.POST.get("confirm") == "yes"


# --- the queue ------------------------------------------------------------------------------


@require_GET
@console_view("triage")
def queue(request: HttpRequest) -> HttpResponse:
    filters = QueueFilterForm(request.GET or None)
    chosen = filters.cleaned_data if filters.is_valid() else {}
    found = tickets(
        status=chosen.get("status") or None,
        work_queue=chosen.get("queue") or None,
        reason=chosen.get("reason") or None,
    ).order_by("-priority", "opened_at", "id")
    page = Paginator(found, PAGE_SIZE).get_page(request.GET.get("page"))
    rows = list(page.object_list)
    about = subject_summaries(rows)
    query = {k: v for k, v in chosen.items() if v}
    return render(
        request,
        "moderation/console/queue.html",
        {
            "filters": filters if filters.is_bound else QueueFilterForm(),
            "page": page,
            "rows": [
                {
                    "ticket": t,
                    "subject": about.get((t.subject_type, t.subject_id)),
                    "reporters": [r.reporter.username for r in t.reports.all() if r.reporter][:3],
                }
                for t in rows
            ],
            "query": urlencode(query),
            "here": request.get_full_path(),
            "can_bulk": request.console_may["moderator"],
        },
    )


@require_POST
@console_view("triage")
def assign(request: HttpRequest, ticket_id) -> HttpResponse:
    ticket = _ticket(ticket_id)
    try:
        ticket_assign(ticket=ticket, assignee=request.user, actor=request.user)
    except ApiError as exc:
        messages.error(request, f"Not assigned: {exc.detail}")
    else:
        messages.success(request, "Assigned to you.")
    return redirect(_back(request, reverse("console:report", args=[ticket.pk])))


@require_POST
@console_view("moderator")
def bulk_acknowledge(request: HttpRequest) -> HttpResponse:
    form = BulkAcknowledgeForm(request.POST)
    back = _back(request, reverse("console:queue"))
    if not form.is_valid():
        for errors in form.errors.values():
            for error in errors:
                messages.error(request, error if "reason" in error else "Select tickets first.")
        return redirect(back)
    chosen = list(
        Ticket.objects.filter(pk__in=form.ticket_ids())
        .exclude(status=TicketStatus.CLOSED)
        .prefetch_related("reports")
    )
    if not _confirmed(request):
        return _confirm(
            request,
            title=f"Acknowledge {len(chosen)} ticket(s), no action",
            what="Every open report on these subjects closes as “no action”; reporters are "
            "told. Reason: " + form.cleaned_data["reason"],
            cancel=back,
        )
    done, failed = 0, []
    for ticket in chosen:
        try:
            event_record(
                actor=request.user,
                subject_type=ticket.subject_type,
                subject_id=ticket.subject_id,
                type=EventType.ACKNOWLEDGE,
                reason=form.cleaned_data["reason"],
                report_ids=[str(r.pk) for r in ticket.reports.all()],
            )
            done += 1
        except ApiError as exc:
            failed.append(f"{ticket.subject_type} {ticket.subject_id[:8]}: {exc.detail}")
    if done:
        messages.success(request, f"Acknowledged {done} ticket(s) (no action).")
    for line in failed:
        messages.error(request, line)
    return redirect(back)


# --- one report -----------------------------------------------------------------------------


def _report_context(request: HttpRequest, ticket: Ticket) -> dict:
    page = report_page(ticket)
    ticket = (
        tickets(status=ticket.status, work_queue=None, reason=None).filter(pk=ticket.pk).first()
        or ticket
    )
    return {
        "ticket": ticket,
        "t": ticket_out(ticket),
        "page": page,
        "actions": available(request.console_role, page, ticket),
        "next": next_ticket(ticket),
        "role": request.console_role,
        "strike_days": settings.RIFF_STRIKE_DAYS,
        "suspend_hours": settings.RIFF_SUSPEND_DEFAULT_HOURS,
        "media_url": (
            reverse("console:media", args=[page["video"].pk, "video"])
            if page.get("video")
            else None
        ),
        "poster_url": (
            reverse("console:media", args=[page["video"].pk, "poster"])
            if page.get("video") and page["video"].poster
            else None
        ),
    }


@require_GET
@console_view("triage")
def report(request: HttpRequest, ticket_id) -> HttpResponse:
    ticket = _ticket(ticket_id)
    return render(request, "moderation/console/report.html", _report_context(request, ticket))


@require_POST
@console_view("triage")
def act(request: HttpRequest, ticket_id) -> HttpResponse:
    ticket = _ticket(ticket_id)
    action = ACTIONS.get(request.POST.get("action", ""))
    if action is None:
        messages.error(request, "Unknown action.")
        return redirect("console:report", ticket.pk)
    # The role first: a refused action writes nothing and says so plainly.
    try:
        require_role(request.user, action.role)
    except Forbidden as exc:
        return _forbidden(request, str(exc.detail))
    page = report_page(ticket, full=False)
    if not action.applies(page, ticket):
        messages.error(request, f"“{action.title}” does not apply to this subject now.")
        return redirect("console:report", ticket.pk)
    form = ActionForm(request.POST, action=action)
    if not form.is_valid():
        for field, errors in form.errors.items():
            for error in errors:
                messages.error(request, f"{action.title}: {field}: {error}")
        context = _report_context(request, ticket)
        context["failed"] = {"action": action.name, "form": form}
        return render(request, "moderation/console/report.html", context, status=400)
    subject_type, subject_id = target_of(action, page)
    if not _confirmed(request):
        return _confirm(
            request,
            title=f"{action.title}: {subject_type} {subject_id}",
            what=f"{action.confirm} Reason: {form.cleaned_data['reason']}",
            cancel=reverse("console:report", args=[ticket.pk]),
        )
    on_subject = (subject_type, subject_id) == (ticket.subject_type, ticket.subject_id)
    try:
        event_record(
            actor=request.user,
            subject_type=subject_type,
            subject_id=subject_id,
            type=action.event,
            reason=form.cleaned_data["reason"],
            duration_hours=form.cleaned_data.get("duration_hours") if action.duration else None,
            label=form.cleaned_data.get("label") or "",
            report_ids=[str(r.pk) for r in ticket.reports.all()] if on_subject else None,
        )
    except ApiError as exc:
        messages.error(request, f"{action.title}: {exc.detail}")
    else:
        messages.success(request, f"{action.title}: done ({subject_type} {subject_id[:8]}…).")
    return redirect("console:report", ticket.pk)


@require_GET
@console_view("triage")
def media(request: HttpRequest, video_id, variant: str) -> HttpResponse:
    return video_file(request, video_id, variant)


# --- appeals --------------------------------------------------------------------------------


@require_GET
@console_view("moderator")
def appeals(request: HttpRequest) -> HttpResponse:
    pending = (
        Appeal.objects.filter(status=AppealStatus.PENDING)
        .select_related("event", "event__target", "appellant")
        .order_by("created_at", "id")
    )
    page = Paginator(pending, PAGE_SIZE).get_page(request.GET.get("page"))
    rows = []
    for appeal in page.object_list:
        ticket = (
            Ticket.objects.filter(
                subject_type=appeal.event.subject_type, subject_id=appeal.event.subject_id
            )
            .order_by("-opened_at")
            .first()
        )
        rows.append({"appeal": appeal, "event": event_out(appeal.event), "ticket": ticket})
    recent = (
        Appeal.objects.exclude(status=AppealStatus.PENDING)
        .select_related("event", "decided_by", "appellant")
        .order_by("-decided_at")[:10]
    )
    return render(
        request,
        "moderation/console/appeals.html",
        {"page": page, "rows": rows, "recent": recent},
    )


@require_POST
@console_view("moderator")
def appeal_decision(request: HttpRequest, appeal_id) -> HttpResponse:
    appeal = Appeal.objects.select_related("event").filter(pk=appeal_id).first()
    if appeal is None:
        raise Http404("No such appeal.")
    form = AppealDecisionForm(request.POST)
    if not form.is_valid():
        for errors in form.errors.values():
            for error in errors:
                messages.error(request, error)
        return redirect("console:appeals")
    approve = form.cleaned_data["decision"] == "approve"
    if not _confirmed(request):
        what = (
            "The action is reversed (the same service undoes it) and the appellant is told."
            if approve
            else "The action stands and the appellant is told."
        )
        return _confirm(
            request,
            title=f"{'Approve' if approve else 'Reject'} the appeal of a {appeal.event.type}",
            what=f"{what} Reason: {form.cleaned_data['reason']}",
            cancel=reverse("console:appeals"),
        )
    try:
        appeal_decide(
            appeal=appeal, actor=request.user, approve=approve, reason=form.cleaned_data["reason"]
        )
    except ApiError as exc:
        messages.error(request, f"Appeal not decided: {exc.detail}")
    else:
        messages.success(request, f"Appeal {'approved' if approve else 'rejected'}.")
    return redirect("console:appeals")


# --- dashboard ------------------------------------------------------------------------------


@require_GET
@console_view("triage")
def dashboard(request: HttpRequest) -> HttpResponse:
    raw = request.GET.get("days", "30")
    ok = raw.isascii() and raw.isdigit() and len(raw) <= 3 and 1 <= int(raw) <= 365
    days = int(raw) if ok else 30
    return render(
        request,
        "moderation/console/dashboard.html",
        {"d": stats.dashboard(days=days), "windows": (1, 7, 30, 90)},
    )

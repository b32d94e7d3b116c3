"""Reports and moderation endpoints (API.md "Reports and moderation"). Thin: parse, check the
role, call one service or selector, answer."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.selectors import user_by_username
from config.core.errors import Invalid, NotFound
from config.core.pagination import page_of, paginated_rows
from config.core.schema import error_responses
from generation.models import Video

from . import selectors, services
from .models import Appeal, Reason, Report, Ticket, TicketStatus
from .safety import held_release
from .serializers import (
    AppealDecisionIn,
    AppealIn,
    AppealOut,
    AssignIn,
    EventIn,
    EventOut,
    ReportIn,
    ReportOut,
    ReportTicketOut,
    SubjectOut,
)
from .subjects import subject_get


class ReportsApi(APIView):
    @extend_schema(
        request=ReportIn,
        responses={201: ReportOut, 200: ReportOut, **error_responses(400, 401, 404)},
        description="Reports a post, video, comment, cameo, user or one of your generations. "
        "The same subject again: 200 with your first report.",
    )
    def post(self, request: Request) -> Response:
        payload = ReportIn(data=request.data)
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        report, created = services.report_create(reporter=request.user, **data)
        code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
        return Response(ReportOut(selectors.report_out(report)).data, status=code)


class MyReportsApi(APIView):
    cursor_name = "moderation.mine"

    @extend_schema(
        responses={200: page_of(ReportOut), **error_responses(400, 401)},
        description="Your reports, newest first, with their status and outcome.",
    )
    def get(self, request: Request) -> Response:
        mine = Report.objects.filter(reporter=request.user).select_related("ticket")
        return paginated_rows(
            self,
            request,
            mine,
            lambda rows: [ReportOut(selectors.report_out(r)).data for r in rows],
        )


class QueueApi(APIView):
    pagination_ordering = ("-priority", "-id")
    cursor_name = "moderation.queue"

    @extend_schema(
        parameters=[
            OpenApiParameter("status", str, required=False, enum=TicketStatus.values),
            OpenApiParameter("queue", str, required=False, enum=selectors.QUEUE_NAMES),
            OpenApiParameter("reason", str, required=False, enum=Reason.values),
            OpenApiParameter("cursor", str, required=False),
            OpenApiParameter("limit", int, required=False, description="Max 100."),
        ],
        responses={200: page_of(ReportTicketOut), **error_responses(400, 401, 403)},
        description="Staff with a moderation role: report tickets (every report on one subject "
        "together), highest priority first; no `status`: all but closed.",
    )
    def get(self, request: Request) -> Response:
        services.require_role(request.user, "triage")
        params = request.query_params
        reason = params.get("reason")
        if reason is not None and reason not in Reason.values:
            raise Invalid("Unknown reason.", fields={"reason": ["Invalid."]})
        found = selectors.tickets(
            status=params.get("status"), work_queue=params.get("queue"), reason=reason
        )
        return paginated_rows(
            self,
            request,
            found,
            lambda rows: [ReportTicketOut(selectors.ticket_out(t)).data for t in rows],
        )


class AssignApi(APIView):
    @extend_schema(
        request=AssignIn,
        responses={200: ReportTicketOut, **error_responses(400, 401, 403, 404, 409)},
        description="Assigns the ticket to `username` (yourself when omitted).",
    )
    def post(self, request: Request, ticket_id) -> Response:
        services.require_role(request.user, "triage")
        payload = AssignIn(data=request.data)
        payload.is_valid(raise_exception=True)
        ticket = Ticket.objects.filter(pk=ticket_id).first()
        if ticket is None:
            raise NotFound("No such report.")
        name = payload.validated_data.get("username")
        assignee = request.user if name is None else user_by_username(name)
        ticket = services.ticket_assign(ticket=ticket, assignee=assignee, actor=request.user)
        ticket = selectors.tickets(status=ticket.status, work_queue=None, reason=None).get(
            pk=ticket.pk
        )
        return Response(ReportTicketOut(selectors.ticket_out(ticket)).data)


class SubjectApi(APIView):
    @extend_schema(
        responses={200: SubjectOut, **error_responses(400, 401, 403, 404)},
        description="A subject's current status, its event history and its tickets.",
    )
    def get(self, request: Request, subject_type: str, subject_id: str) -> Response:
        services.require_role(request.user, "triage")
        subject = subject_get(subject_type, subject_id)
        return Response(SubjectOut(selectors.subject_out(subject)).data)


class EventsApi(APIView):
    @extend_schema(
        request=EventIn,
        responses={201: EventOut, 200: EventOut, **error_responses(400, 401, 403, 404, 409)},
        description="Records a moderation action (docs/moderation.md for who may do what). A "
        "repeated `external_id`: 200 with the first event.",
    )
    def post(self, request: Request) -> Response:
        payload = EventIn(data=request.data)
        payload.is_valid(raise_exception=True)
        data = dict(payload.validated_data)
        data["report_ids"] = [str(r) for r in data.get("report_ids", [])]
        event, created = services.event_record(actor=request.user, **data)
        code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
        return Response(EventOut(selectors.event_out(event)).data, status=code)


class AppealsApi(APIView):
    @extend_schema(
        request=AppealIn,
        responses={201: AppealOut, **error_responses(400, 401, 404, 409)},
        description="Appeals an action taken on you or your content, once, within "
        "RIFF_APPEAL_WINDOW_DAYS days.",
    )
    def post(self, request: Request) -> Response:
        payload = AppealIn(data=request.data)
        payload.is_valid(raise_exception=True)
        appeal = services.appeal_create(user=request.user, **payload.validated_data)
        return Response(
            AppealOut(selectors.appeal_out(appeal)).data, status=status.HTTP_201_CREATED
        )


class PendingAppealsApi(APIView):
    pagination_ordering = ("created_at", "id")
    cursor_name = "moderation.appeals"

    @extend_schema(
        responses={200: page_of(AppealOut), **error_responses(400, 401, 403)},
        description="Moderators: pending appeals, oldest first.",
    )
    def get(self, request: Request) -> Response:
        services.require_role(request.user, "moderator")
        pending = Appeal.objects.filter(status="pending").select_related("event")
        return paginated_rows(
            self,
            request,
            pending,
            lambda rows: [AppealOut(selectors.appeal_out(a)).data for a in rows],
        )


class AppealDecisionApi(APIView):
    approve = True

    @extend_schema(
        request=AppealDecisionIn,
        responses={200: AppealOut, **error_responses(400, 401, 403, 404, 409)},
    )
    def post(self, request: Request, appeal_id) -> Response:
        services.require_role(request.user, "moderator")
        payload = AppealDecisionIn(data=request.data)
        payload.is_valid(raise_exception=True)
        appeal = Appeal.objects.filter(pk=appeal_id).first()
        if appeal is None:
            raise NotFound("No such appeal.")
        appeal = services.appeal_decide(
            appeal=appeal,
            actor=request.user,
            approve=self.approve,
            reason=payload.validated_data.get("reason", ""),
        )
        return Response(AppealOut(selectors.appeal_out(appeal)).data)


class AppealApproveApi(AppealDecisionApi):
    approve = True


class AppealRejectApi(AppealDecisionApi):
    approve = False


class HeldReleaseApi(APIView):
    @extend_schema(
        request=AppealDecisionIn,
        responses={200: SubjectOut, **error_responses(400, 401, 403, 404, 409)},
        description="Moderators: a video the output check held (docs/moderation-safety.md) "
        "was fine; it becomes its owner's draft. To remove it instead, take it down.",
    )
    def post(self, request: Request, video_id) -> Response:
        services.require_role(request.user, "moderator")
        payload = AppealDecisionIn(data=request.data)
        payload.is_valid(raise_exception=True)
        video = Video.objects.filter(pk=video_id).first()
        if video is None:
            raise NotFound("No such video.")
        held_release(
            video=video, actor=request.user, reason=payload.validated_data.get("reason", "")
        )
        subject = subject_get("video", str(video_id))
        return Response(SubjectOut(selectors.subject_out(subject)).data)

"""Revenue endpoints (API.md "Rights and revenue"): revenue events, earnings, credits, the
trial balance. Thin: parse, call one service or selector, answer."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.authentication import BearerTokenAuthentication
from accounts.idempotency import HEADER, idempotent
from accounts.selectors import user_by_username
from config.core.errors import Forbidden, Invalid, NotFound
from config.core.pagination import KeysetPagination, page_of, paginated_response
from config.core.schema import IDEMPOTENCY_HEADER, error_responses

from . import payouts, selectors, services
from .authentication import ServiceTokenAuthentication, is_service
from .serializers import (
    CreditGrantIn,
    CreditGrantOut,
    CreditsOut,
    EarningsOut,
    PayoutIn,
    PayoutOut,
    RevenueEventIn,
    RevenueEventOut,
    TrialBalanceOut,
)


def _staff_or_service(request: Request) -> None:
    if not (is_service(request) or request.user.is_staff):
        raise Forbidden("Staff or a service token only.")


def _key(request: Request) -> str | None:
    key = request.META.get(HEADER)
    if key is not None and (not key or len(key) > 255 or not key.isprintable()):
        raise Invalid(
            "Idempotency-Key must be 1-255 printable characters.",
            fields={"Idempotency-Key": ["Invalid."]},
        )
    return key


class ServiceApi(APIView):
    """A staff user's request goes through the per-caller Idempotency-Key store
    (accounts.idempotency); a service call has no user row to scope it to and relies on the
    ledger's own idempotency, which gives the same answers."""

    authentication_classes = [ServiceTokenAuthentication, BearerTokenAuthentication]

    def post(self, request: Request) -> Response:
        # Parse first: a malformed body is a 400 whoever sends it (the same answer every other
        # endpoint gives), and reading it reveals nothing to a caller who is then refused.
        request.data  # noqa: B018
        _staff_or_service(request)
        if is_service(request):
            return self.handle_post(request)
        return self._idempotent_post(request)

    @idempotent
    def _idempotent_post(self, request: Request) -> Response:
        return self.handle_post(request)

    def handle_post(self, request: Request) -> Response:  # pragma: no cover - abstract
        raise NotImplementedError


class RevenueEventsApi(ServiceApi):
    @extend_schema(
        request=RevenueEventIn,
        parameters=[IDEMPOTENCY_HEADER],
        responses={201: RevenueEventOut, **error_responses(400, 401, 403, 404, 409, 422)},
        description="Staff or service token. Records revenue of a post once per "
        "(source, Idempotency-Key) and splits it (docs/rights.md). The key is required: it is "
        "the event's id at its source. The same key and body replays the first answer; "
        "another body is 422 `idempotency_mismatch`. The splits add up to `amount_micros`.",
    )
    def post(self, request: Request) -> Response:
        return super().post(request)

    def handle_post(self, request: Request) -> Response:
        key = _key(request)
        payload = RevenueEventIn(data=request.data)
        payload.is_valid(raise_exception=True)
        if key is None:
            raise Invalid(
                "Revenue events need an Idempotency-Key.",
                fields={"Idempotency-Key": ["Required."]},
            )
        data = payload.validated_data
        recorded = services.revenue_event_record(
            source=data["source"],
            key=key,
            post_id=data["post_id"],
            amount_micros=data["amount_micros"],
            currency=data["currency"],
            held=data["hold"],
            created_by=None if is_service(request) else request.user,
        )
        body = selectors.event_out(event=recorded.event, transfers=recorded.transfers)
        headers = {"Idempotent-Replayed": "true"} if recorded.replayed else {}
        return Response(RevenueEventOut(body).data, status=status.HTTP_201_CREATED, headers=headers)


class EarningsApi(APIView):
    pagination_ordering = ("-id",)
    cursor_name = "rights.earnings"

    @extend_schema(
        parameters=[
            OpenApiParameter("cursor", str, required=False, description="Lines: next page."),
            OpenApiParameter("limit", int, required=False, description="Lines per page (max 100)."),
        ],
        responses={200: EarningsOut, **error_responses(400, 401)},
        description="Your balances per currency (available and pending) and your ledger "
        "lines, newest first (cursor-paged).",
    )
    def get(self, request: Request) -> Response:
        accounts = list(selectors.user_accounts(user=request.user))
        ids = [a.pk for a in accounts]
        paginator = KeysetPagination()
        page = paginator.paginate_queryset(selectors.earnings_lines(account_ids=ids), request, self)
        lines = [selectors.earning_line(t, set(ids)) for t in page]
        body = {
            "balances": selectors.earnings_balances(user=request.user),
            "lines": {"results": lines, "next": paginator.get_next_link()},
        }
        return Response(EarningsOut(body).data)


class CreditsApi(APIView):
    @extend_schema(responses={200: CreditsOut, **error_responses(401)})
    def get(self, request: Request) -> Response:
        return Response({"balance": selectors.credits_balance(user=request.user)})


class CreditGrantsApi(ServiceApi):
    @extend_schema(
        request=CreditGrantIn,
        parameters=[IDEMPOTENCY_HEADER],
        responses={201: CreditGrantOut, **error_responses(400, 401, 403, 404, 409, 422)},
        description="Staff or service token: grants generation credits (a purchase completed "
        "elsewhere). With an Idempotency-Key a retry grants once.",
    )
    def post(self, request: Request) -> Response:
        return super().post(request)

    def handle_post(self, request: Request) -> Response:
        key = _key(request)
        payload = CreditGrantIn(data=request.data)
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        try:
            user = user_by_username(data["username"])
        except NotFound:
            raise NotFound("No such user.", fields={"username": ["No such user."]}) from None
        scope = "service" if is_service(request) else str(request.user.pk)
        ledger_key = f"{scope}:{key}" if key else f"once:{services.new_key()}"
        transfer = services.credits_grant(user=user, credits=data["credits"], key=ledger_key)
        body = {
            "id": transfer.public_id,
            "username": user.username,
            "credits": transfer.amount_micros,
            "balance": selectors.credits_balance(user=user),
        }
        return Response(CreditGrantOut(body).data, status=status.HTTP_201_CREATED)


class TrialBalanceApi(APIView):
    @extend_schema(
        responses={200: TrialBalanceOut, **error_responses(401, 403)},
        description="Staff: per currency, the sum of every account's debits and credits "
        "(always equal; `manage.py ledger_check` proves them against the transfers).",
    )
    def get(self, request: Request) -> Response:
        if not request.user.is_staff:
            raise Forbidden("Staff only.")
        return Response(TrialBalanceOut({"currencies": selectors.trial_balance()}).data)


class PayoutsApi(APIView):
    pagination_ordering = ("-created_at", "-id")

    @extend_schema(responses={200: page_of(PayoutOut), **error_responses(400, 401)})
    def get(self, request: Request) -> Response:
        return paginated_response(self, request, selectors.payouts_of(user=request.user), PayoutOut)

    @extend_schema(
        request=PayoutIn,
        parameters=[IDEMPOTENCY_HEADER],
        responses={201: PayoutOut, **error_responses(400, 401, 409, 422)},
        description="Takes `amount_micros` out of your available earnings (reserved until "
        "staff mark it paid or failed; failed gives it back). 409 `insufficient_funds`.",
    )
    @idempotent
    def post(self, request: Request) -> Response:
        payload = PayoutIn(data=request.data)
        payload.is_valid(raise_exception=True)
        payout = payouts.payout_request(user=request.user, **payload.validated_data)
        return Response(PayoutOut(payout).data, status=status.HTTP_201_CREATED)

"""Rights and revenue endpoints (API.md "Rights and revenue"): the catalogue (holders,
assets, the IP check, claims, statements), revenue events, earnings, credits, payouts, the
trial balance. Thin: parse, call one service or selector, answer."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, time, timedelta

from django.http import HttpResponse
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.permissions import AllowAny
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.authentication import BearerTokenAuthentication
from accounts.idempotency import HEADER, idempotent
from accounts.selectors import user_by_username
from config.core.errors import Forbidden, Invalid, NotFound
from config.core.pagination import KeysetPagination, page_of, paginated_response, paginated_rows
from config.core.schema import IDEMPOTENCY_HEADER, error_responses

from . import catalogue, claims, payouts, selectors, services
from .authentication import ServiceTokenAuthentication, is_service
from .models import Claim, ClaimStatus
from .serializers import (
    AssetIn,
    AssetOut,
    AssetPatchIn,
    AssetsPage,
    CheckOut,
    ClaimOut,
    ClaimsOut,
    CreditGrantIn,
    CreditGrantOut,
    CreditsOut,
    DisputeIn,
    EarningsOut,
    HolderIn,
    HolderMemberIn,
    HolderOut,
    PayoutIn,
    PayoutOut,
    RevenueEventIn,
    RevenueEventOut,
    StatementOut,
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


# --- the rights catalogue: holders, assets, the IP check, claims, statements ---------------


def _holder_body(holder, user) -> dict:
    show = user.is_staff or catalogue.is_member(user, holder.pk)
    return HolderOut(selectors.holder_out(holder, show_members=show)).data


class HoldersApi(APIView):
    @extend_schema(
        request=HolderIn,
        responses={201: HolderOut, **error_responses(400, 401, 403, 404, 409)},
        description="Staff: registers a rights holder with its first members (usernames).",
    )
    def post(self, request: Request) -> Response:
        payload = HolderIn(data=request.data)
        payload.is_valid(raise_exception=True)
        if not request.user.is_staff:
            raise Forbidden("Staff only.")
        members = [_user(name) for name in dict.fromkeys(payload.validated_data["members"])]
        holder = catalogue.holder_create(name=payload.validated_data["name"], members=members)
        return Response(_holder_body(holder, request.user), status=status.HTTP_201_CREATED)


def _user(username: str):
    try:
        return user_by_username(username)
    except NotFound:
        raise NotFound("No such user.", fields={"username": [username[:30]]}) from None


class HolderApi(APIView):
    @extend_schema(
        responses={200: HolderOut, **error_responses(401, 404)},
        description="Members and staff: the holder with its members.",
    )
    def get(self, request: Request, holder_id) -> Response:
        holder = catalogue.holder_for_member(holder_id=holder_id, user=request.user)
        return Response(_holder_body(holder, request.user))


class HolderMembersApi(APIView):
    @extend_schema(
        request=HolderMemberIn,
        responses={201: HolderOut, **error_responses(400, 401, 404, 409)},
        description="Staff or a member: adds a member (already one: the same answer).",
    )
    def post(self, request: Request, holder_id) -> Response:
        holder = catalogue.holder_for_member(holder_id=holder_id, user=request.user)
        payload = HolderMemberIn(data=request.data)
        payload.is_valid(raise_exception=True)
        catalogue.holder_member_add(holder=holder, user=_user(payload.validated_data["username"]))
        return Response(_holder_body(holder, request.user), status=status.HTTP_201_CREATED)


class HolderMemberApi(APIView):
    @extend_schema(
        responses={204: None, **error_responses(401, 404, 409)},
        description="Staff or a member: removes a member (a member may leave). The last "
        "member stays unless staff remove it: 409 `last_member`.",
    )
    def delete(self, request: Request, holder_id, username: str) -> Response:
        holder = catalogue.holder_for_member(holder_id=holder_id, user=request.user)
        catalogue.holder_member_remove(holder=holder, user=_user(username), actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class PublicReadView(APIView):
    """GET is public (the catalogue): no authentication runs, so a bad or missing token is
    just anonymous; other verbs authenticate as usual."""

    def get_permissions(self):
        return [AllowAny()] if self.request.method == "GET" else super().get_permissions()

    def get_authenticators(self):
        if getattr(self, "request", None) is not None and self.request.method == "GET":
            return []
        return super().get_authenticators()


class AssetsApi(PublicReadView):
    cursor_name = "rights.assets"

    @extend_schema(
        operation_id="rights_assets_list",
        auth=[],
        parameters=[
            OpenApiParameter("q", str, required=False, description="Name or alias contains."),
            OpenApiParameter("cursor", str, required=False),
            OpenApiParameter("limit", int, required=False, description="Max 100."),
        ],
        responses={200: AssetsPage, **error_responses(400)},
        description="Public: the catalogue of registered assets and their policies, newest "
        "first. Only what a holder registers is protected.",
    )
    def get(self, request: Request) -> Response:
        q = request.query_params.get("q", "")
        if len(q) > 120 or not q.isprintable():
            raise Invalid("q is at most 120 printable characters.", fields={"q": ["Invalid."]})
        return paginated_rows(
            self, request, catalogue.catalogue(q=q), lambda rows: [_asset_body(a) for a in rows]
        )

    @extend_schema(
        request=AssetIn,
        responses={201: AssetOut, **error_responses(400, 401, 403, 404, 409)},
        description="A member of the holder registers an asset (version 1).",
    )
    def post(self, request: Request) -> Response:
        payload = AssetIn(data=request.data)
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        holder = catalogue.holder_for_member(holder_id=data["holder_id"], user=request.user)
        if not catalogue.is_member(request.user, holder.pk):
            raise Forbidden("Only members of the holder register its assets.")
        asset = catalogue.asset_create(holder=holder, actor=request.user, data=data)
        return Response(_asset_body(asset), status=status.HTTP_201_CREATED)


def _asset_body(asset) -> dict:
    return AssetOut(selectors.asset_out(asset)).data


class AssetApi(PublicReadView):
    @extend_schema(auth=[], responses={200: AssetOut, **error_responses(404)})
    def get(self, request: Request, asset_id) -> Response:
        asset = catalogue.catalogue().filter(pk=asset_id).first()
        if asset is None:
            raise NotFound("No such asset.")
        return Response(_asset_body(asset))

    @extend_schema(
        request=AssetPatchIn,
        responses={200: AssetOut, **error_responses(400, 401, 403, 404, 409)},
        description="Members: changes the asset; a change to its terms bumps `version`. "
        "Videos made before keep the version their claims name.",
    )
    def patch(self, request: Request, asset_id) -> Response:
        asset = catalogue.asset_for_member(asset_id=asset_id, user=request.user)
        payload = AssetPatchIn(data=request.data)
        payload.is_valid(raise_exception=True)
        asset = catalogue.asset_update(asset=asset, actor=request.user, data=payload.validated_data)
        return Response(_asset_body(asset))


class CheckApi(APIView):
    @extend_schema(
        parameters=[OpenApiParameter("prompt", str, required=True, description="≤ 2000 chars.")],
        responses={200: CheckOut, **error_responses(400, 401)},
        description="The IP decision a generation with this prompt would get, without "
        "generating: alias matches here, the semantic check on a worker (`semantic` false when "
        "no worker answered in time).",
    )
    def get(self, request: Request) -> Response:
        prompt = request.query_params.get("prompt", "")
        if not prompt.strip() or len(prompt) > 2000 or "\x00" in prompt:
            raise Invalid("prompt is 1-2000 characters.", fields={"prompt": ["Invalid."]})
        decision, semantic = services.ip_check(user=request.user, prompt=prompt)
        body = {
            "decision": decision.decision,
            "matches": [
                {
                    "asset": selectors.asset_out(m.asset),
                    "policy": m.asset.policy,
                    "matched": m.matched,
                    "via": m.via,
                    "score": m.score,
                }
                for m in decision.matches
            ],
            "semantic": semantic,
        }
        return Response(CheckOut(body).data)


class HolderClaimsApi(APIView):
    cursor_name = "rights.holder_claims"

    @extend_schema(
        parameters=[
            OpenApiParameter("status", str, required=False, enum=[s.value for s in ClaimStatus]),
            OpenApiParameter("cursor", str, required=False),
            OpenApiParameter("limit", int, required=False, description="Max 100."),
        ],
        responses={200: ClaimsOut, **error_responses(400, 401, 404)},
        description="Members and staff: the holder's claims, newest first.",
    )
    def get(self, request: Request, holder_id) -> Response:
        holder = catalogue.holder_for_member(holder_id=holder_id, user=request.user)
        claims = Claim.objects.filter(holder=holder).select_related("asset__holder")
        wanted = request.query_params.get("status")
        if wanted is not None:
            if wanted not in ClaimStatus.values:
                raise Invalid("Unknown status.", fields={"status": ["Invalid."]})
            claims = claims.filter(status=wanted)
        return paginated_rows(
            self,
            request,
            claims,
            lambda rows: [ClaimOut(selectors.claim_out(c)).data for c in rows],
        )


class ClaimActionApi(APIView):
    target = ""

    def act(self, request: Request, claim_id, reason: str = "") -> Response:
        found = claims.claim_for(claim_id=claim_id, user=request.user)
        claim = claims.claim_transition(
            claim=found, to=self.target, actor=request.user, reason=reason
        )
        claim = selectors.video_claims(video_id=claim.video_id).get(pk=claim.pk)
        return Response(ClaimOut(selectors.claim_out(claim)).data)


class ClaimDisputeApi(ClaimActionApi):
    target = ClaimStatus.DISPUTED

    @extend_schema(
        request=DisputeIn,
        responses={200: ClaimOut, **error_responses(400, 401, 403, 404, 409)},
        description="The video's owner disputes a claim: revenue of the video is held until "
        "a member of the holder upholds or releases it.",
    )
    def post(self, request: Request, claim_id) -> Response:
        payload = DisputeIn(data=request.data)
        payload.is_valid(raise_exception=True)
        return self.act(request, claim_id, payload.validated_data["reason"])


class ClaimUpholdApi(ClaimActionApi):
    target = ClaimStatus.UPHELD

    @extend_schema(
        request=None,
        responses={200: ClaimOut, **error_responses(401, 403, 404, 409)},
        description="Members of the claiming holder: the dispute is decided for the holder; "
        "the held revenue is paid as split.",
    )
    def post(self, request: Request, claim_id) -> Response:
        return self.act(request, claim_id)


class ClaimReleaseApi(ClaimActionApi):
    target = ClaimStatus.RELEASED

    @extend_schema(
        request=None,
        responses={200: ClaimOut, **error_responses(401, 403, 404, 409)},
        description="Members of the claiming holder give the claim up (active or disputed): "
        "held revenue is split again without it.",
    )
    def post(self, request: Request, claim_id) -> Response:
        return self.act(request, claim_id)


class StatementApi(APIView):
    @extend_schema(
        parameters=[
            OpenApiParameter(
                "from",
                str,
                required=False,
                description="ISO date or time (UTC); default: 30 days before `to`.",
            ),
            OpenApiParameter("to", str, required=False, description="Exclusive; default: now."),
            OpenApiParameter("format", str, required=False, enum=["json", "csv"]),
        ],
        responses={
            (200, "application/json"): StatementOut,
            (200, "text/csv"): OpenApiTypes.STR,
            **error_responses(400, 401, 404),
        },
        description="Members and staff: the holder's statement for a period (at most 366 "
        "days): balances at both ends and every ledger line.",
    )
    def get(self, request: Request, holder_id) -> Response:
        holder = catalogue.holder_for_member(holder_id=holder_id, user=request.user)
        start, end = period(request.query_params.get("from"), request.query_params.get("to"))
        fmt = request.query_params.get("format", "json")
        if fmt not in ("json", "csv"):
            raise Invalid("format is json or csv.", fields={"format": ["Invalid."]})
        body = selectors.statement(holder=holder, start=start, end=end)
        if fmt == "csv":
            return statement_csv(body)
        return Response(StatementOut(body).data)


class CSVRenderer(BaseRenderer):
    """Lets `?format=csv` through DRF's content negotiation; the view writes the bytes."""

    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        return data if isinstance(data, bytes | str) else b""


StatementApi.renderer_classes = [JSONRenderer, CSVRenderer]
MAX_PERIOD = timedelta(days=366)


def _instant(raw: str, name: str) -> datetime:
    value = parse_datetime(raw) if "T" in raw or " " in raw else None
    if value is None:
        day = parse_date(raw) if len(raw) <= 10 else None
        value = datetime.combine(day, time.min) if day else None
    if value is None:
        raise Invalid(f"`{name}` is an ISO date or time.", fields={name: ["Invalid."]})
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def period(raw_from: str | None, raw_to: str | None) -> tuple[datetime, datetime]:
    try:
        end = _instant(raw_to, "to") if raw_to else timezone.now()
        start = _instant(raw_from, "from") if raw_from else end - timedelta(days=30)
    except ValueError:  # a well-formed but impossible date (2026-02-30)
        raise Invalid("Not a real date.", fields={"from": ["Invalid."]}) from None
    if not start < end or end - start > MAX_PERIOD:
        raise Invalid(
            "`from` must be before `to`, at most 366 days apart.", fields={"from": ["Invalid."]}
        )
    return start, end


STATEMENT_COLUMNS = (
    "created_at",
    "id",
    "kind",
    "role",
    "type",
    "amount_micros",
    "currency",
    "post_id",
    "event_id",
)


def statement_csv(body: dict) -> HttpResponse:
    """One row per ledger line; the totals follow as `total` rows (one per currency)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(STATEMENT_COLUMNS)
    for line in body["lines"]:
        writer.writerow(
            [
                "" if line[c] is None else (line[c].isoformat() if c == "created_at" else line[c])
                for c in STATEMENT_COLUMNS
            ]
        )
    writer.writerow([])
    writer.writerow(
        [
            "total",
            "currency",
            "opening_micros",
            "posted_in_micros",
            "posted_out_micros",
            "closing_micros",
            "pending_micros",
        ]
    )
    for t in body["totals"]:
        writer.writerow(
            [
                "total",
                t["currency"],
                t["opening_micros"],
                t["posted_in_micros"],
                t["posted_out_micros"],
                t["closing_micros"],
                t["pending_micros"],
            ]
        )
    name = f"statement-{body['holder']['id']}-{body['period_from']:%Y%m%d}-{body['period_to']:%Y%m%d}.csv"
    response = HttpResponse(out.getvalue(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response

"""Revenue reads: earnings, credits, the trial balance, an event's splits. Balances are read
from the accounts' cached sums, which ledger_check proves equal to the transfers."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db.models import Q, QuerySet, Sum

from .models import (
    AccountKind,
    Claim,
    HolderMember,
    IPAsset,
    LedgerAccount,
    OwnerType,
    Payout,
    RevenueEvent,
    RightsHolder,
    Transfer,
    TransferType,
)


def user_accounts(*, user, kind: str = AccountKind.EARNINGS) -> QuerySet[LedgerAccount]:
    return LedgerAccount.objects.filter(
        owner_type=OwnerType.USER, owner_id=str(user.pk), kind=kind
    ).order_by("currency")


def earnings_balances(*, user) -> list[dict[str, Any]]:
    return [
        {
            "currency": a.currency,
            "available_micros": a.available_micros,
            "pending_micros": a.pending_micros,
        }
        for a in user_accounts(user=user)
    ]


def earnings_lines(*, account_ids: list[int]) -> QuerySet[Transfer]:
    """Every transfer in or out of these accounts (the caller pages it by -id)."""
    return Transfer.objects.filter(
        Q(credit_account_id__in=account_ids) | Q(debit_account_id__in=account_ids)
    ).select_related("event")


def earning_line(transfer: Transfer, account_ids: set[int]) -> dict[str, Any]:
    sign = 1 if transfer.credit_account_id in account_ids else -1
    # A void takes back what its pending transfer announced; show it with the opposite sign.
    if transfer.type == TransferType.VOID_PENDING:
        sign = -sign
    event = transfer.event
    return {
        "id": transfer.public_id,
        "kind": transfer.kind,
        "role": transfer.role,
        "type": transfer.type,
        "amount_micros": sign * transfer.amount_micros,
        "currency": transfer.currency,
        "post_id": event.post_id if event else None,
        "event_id": event.pk if event else None,
        "created_at": transfer.created_at,
    }


def credits_balance(*, user) -> int:
    account = user_accounts(user=user, kind=AccountKind.CREDITS).first()
    return account.available_micros if account else 0


def trial_balance() -> dict[str, dict[str, int]]:
    """Per currency, the sums over every account: posted debits always equal posted credits
    (each transfer adds the same amount to one of each), and the same for pending."""
    rows = (
        LedgerAccount.objects.values("currency")
        .annotate(
            d=Sum("debits_posted"),
            c=Sum("credits_posted"),
            dp=Sum("debits_pending"),
            cp=Sum("credits_pending"),
        )
        .order_by("currency")
    )
    return {
        r["currency"]: {
            "debits_micros": r["d"] or 0,
            "credits_micros": r["c"] or 0,
            "pending_debits_micros": r["dp"] or 0,
            "pending_credits_micros": r["cp"] or 0,
        }
        for r in rows
    }


def event_splits(*, event: RevenueEvent, transfers: list[Transfer]) -> list[dict[str, Any]]:
    """The event's parts as API.md shows them; a held part is `pending` until released
    (`posted`) or voided (`voided`)."""
    resolved = dict(
        Transfer.objects.filter(
            pending__in=[t.pk for t in transfers if t.type == "pending"]
        ).values_list("pending_id", "type")
    )
    accounts = {
        a.pk: a
        for a in LedgerAccount.objects.filter(pk__in=[t.credit_account_id for t in transfers])
    }
    out = []
    for t in transfers:
        account = accounts[t.credit_account_id]
        status = "posted"
        if t.type == TransferType.PENDING:
            status = {"post_pending": "posted", "void_pending": "voided"}.get(
                resolved.get(t.pk), "pending"
            )
        out.append(
            {
                "party": {"type": account.owner_type, "id": account.owner_id or None},
                "role": t.role,
                "amount_micros": t.amount_micros,
                "status": status,
            }
        )
    return out


def event_out(*, event: RevenueEvent, transfers: list[Transfer]) -> dict[str, Any]:
    return {
        "id": event.pk,
        "source": event.source,
        "post_id": event.post_id,
        "amount_micros": event.amount_micros,
        "currency": event.currency,
        "held": event.held,
        "splits": event_splits(event=event, transfers=transfers),
        "created_at": event.created_at,
    }


def payouts_of(*, user) -> QuerySet[Payout]:
    return Payout.objects.filter(user=user)


# --- the rights catalogue -----------------------------------------------------------------

STATEMENT_MAX_LINES = 20_000


def holder_ref(holder: RightsHolder) -> dict[str, Any]:
    return {"id": holder.pk, "name": holder.name, "verified": holder.verified}


def holder_out(holder: RightsHolder, *, show_members: bool) -> dict[str, Any]:
    members = (
        list(
            HolderMember.objects.filter(holder=holder)
            .order_by("created_at", "id")
            .values_list("user__username", flat=True)
        )
        if show_members
        else []
    )
    return {**holder_ref(holder), "members": members, "created_at": holder.created_at}


def asset_out(asset: IPAsset) -> dict[str, Any]:
    return {
        "id": asset.pk,
        "holder": holder_ref(asset.holder),
        "name": asset.name,
        "aliases": list(asset.aliases),
        "description": asset.description,
        "policy": asset.policy,
        "share_bps": asset.share_bps,
        "fee_micros": asset.fee_micros,
        "fee_currency": settings.RIFF_RIGHTS_FEE_CURRENCY,
        "semantic_threshold": asset.semantic_threshold,
        "cameo_id": asset.cameo_id,
        "version": asset.version,
        "created_at": asset.created_at,
        "updated_at": asset.updated_at,
    }


def claim_out(claim: Claim) -> dict[str, Any]:
    return {
        "id": claim.pk,
        "video_id": claim.video_id,
        "asset": asset_out(claim.asset),
        "policy": claim.policy,
        "policy_version": claim.policy_version,
        "share_bps": claim.share_bps,
        "via": claim.via,
        "matched": claim.matched,
        "status": claim.status,
        "dispute_reason": claim.dispute_reason,
        "created_at": claim.created_at,
        "updated_at": claim.updated_at,
    }


def video_claims(*, video_id) -> QuerySet[Claim]:
    return Claim.objects.filter(video_id=video_id).select_related("asset__holder", "holder")


def holder_accounts(*, holder: RightsHolder) -> QuerySet[LedgerAccount]:
    return LedgerAccount.objects.filter(
        owner_type=OwnerType.HOLDER, owner_id=str(holder.pk), kind=AccountKind.EARNINGS
    ).order_by("currency")


def statement(*, holder: RightsHolder, start, end) -> dict[str, Any]:
    """A holder's statement for [start, end): per currency the posted balance at both ends,
    what came in and went out, what is held at the end, and every ledger line of the period
    (oldest first). Read from the transfers, not the cached sums, so it is exact at any date."""
    accounts = {a.pk: a for a in holder_accounts(holder=holder)}
    ids = set(accounts)
    touching = Q(credit_account_id__in=ids) | Q(debit_account_id__in=ids)
    lines_qs = (
        Transfer.objects.filter(touching, created_at__gte=start, created_at__lt=end)
        .select_related("event")
        .order_by("created_at", "id")
    )
    lines = list(lines_qs[: STATEMENT_MAX_LINES + 1])
    truncated = len(lines) > STATEMENT_MAX_LINES
    lines = lines[:STATEMENT_MAX_LINES]
    totals = []
    for pk, account in accounts.items():
        side = Q(credit_account_id=pk) | Q(debit_account_id=pk)
        before = Transfer.objects.filter(side, created_at__lt=start)
        during = Transfer.objects.filter(side, created_at__gte=start, created_at__lt=end)
        upto = Transfer.objects.filter(side, created_at__lt=end)
        opening = _posted_sum(before, pk)
        posted_in = _posted_sum(during.filter(credit_account_id=pk), pk)
        posted_out = -_posted_sum(during.filter(debit_account_id=pk), pk)
        totals.append(
            {
                "currency": account.currency,
                "opening_micros": opening,
                "posted_in_micros": posted_in,
                "posted_out_micros": posted_out,
                "closing_micros": opening + posted_in - posted_out,
                "pending_micros": _pending_sum(upto, pk),
            }
        )
    return {
        "holder": holder_ref(holder),
        "period_from": start,
        "period_to": end,
        "totals": totals,
        "lines": [{**earning_line(t, ids), "created_at": t.created_at} for t in lines],
        "truncated": truncated,
    }


_POSTING = [TransferType.POSTED, TransferType.POST_PENDING]


def _posted_sum(transfers: QuerySet[Transfer], account_id: int) -> int:
    """Posted credits minus posted debits of one account over `transfers`."""
    sums = transfers.filter(type__in=_POSTING).aggregate(
        c=Sum("amount_micros", filter=Q(credit_account_id=account_id)),
        d=Sum("amount_micros", filter=Q(debit_account_id=account_id)),
    )
    return (sums["c"] or 0) - (sums["d"] or 0)


def _pending_sum(transfers: QuerySet[Transfer], account_id: int) -> int:
    """Pending credits still open at the end of `transfers` (pending less resolved)."""
    sums = transfers.filter(credit_account_id=account_id).aggregate(
        p=Sum("amount_micros", filter=Q(type=TransferType.PENDING)),
        r=Sum(
            "amount_micros",
            filter=Q(type__in=[TransferType.POST_PENDING, TransferType.VOID_PENDING]),
        ),
    )
    return (sums["p"] or 0) - (sums["r"] or 0)

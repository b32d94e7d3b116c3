"""Revenue reads: earnings, credits, the trial balance, an event's splits. Balances are read
from the accounts' cached sums, which ledger_check proves equal to the transfers."""

from __future__ import annotations

from typing import Any

from django.db.models import Q, QuerySet, Sum

from .models import (
    AccountKind,
    LedgerAccount,
    OwnerType,
    Payout,
    RevenueEvent,
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

"""Payouts: requested -> approved -> paid | failed (docs/rights.md "Payouts").

The payment provider is outside Riff: staff (admin actions) or a service mark a payout paid
or failed. Requesting reserves the money with a pending transfer from the user's earnings to
the `payouts` clearing account, so it can't be spent twice; paid posts it, failed voids it
and the money is available again.
"""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from config.core.errors import Invalid
from config.core.states import StateMachine

from .ledger import (
    InsufficientFunds,
    TransferSpec,
    clearing_account,
    transfer_resolve,
    transfers_apply,
)
from .models import AccountKind, LedgerAccount, OwnerType, Payout, PayoutStatus, TransferType
from .services import CURRENCY, MAX_AMOUNT_MICROS

PAYOUT_STATES = StateMachine(
    "payout",
    {
        PayoutStatus.REQUESTED: [PayoutStatus.APPROVED, PayoutStatus.FAILED],
        PayoutStatus.APPROVED: [PayoutStatus.PAID, PayoutStatus.FAILED],
        PayoutStatus.PAID: [],
        PayoutStatus.FAILED: [],
    },
)


def payout_request(*, user, amount_micros: int, currency: str) -> Payout:
    """Reserves `amount_micros` of the user's available earnings; 409 `insufficient_funds`
    when they are not there (nothing is written then)."""
    if not CURRENCY.fullmatch(currency or ""):
        raise Invalid("currency is a 3-letter ISO code.", fields={"currency": ["Invalid."]})
    if not 0 < amount_micros <= MAX_AMOUNT_MICROS:
        raise Invalid("amount_micros must be positive.", fields={"amount_micros": ["Invalid."]})
    account = LedgerAccount.objects.filter(
        owner_type=OwnerType.USER, owner_id=str(user.pk), kind=AccountKind.EARNINGS,
        currency=currency,
    ).first()  # fmt: skip
    if account is None:
        raise InsufficientFunds("You have no earnings in this currency.")
    clearing = clearing_account("payouts", currency)
    with transaction.atomic():
        payout = Payout.objects.create(user=user, amount_micros=amount_micros, currency=currency)
        (reserve,) = transfers_apply(
            [
                TransferSpec(
                    key=f"payout:{payout.pk}",
                    debit=account,
                    credit=clearing,
                    amount_micros=amount_micros,
                    currency=currency,
                    kind="payout",
                    type=TransferType.PENDING,
                )
            ],
            fresh=True,
        )
        Payout.objects.filter(pk=payout.pk).update(transfer=reserve)
        payout.transfer = reserve
    return payout


@transaction.atomic
def payout_transition(*, payout: Payout, to: str) -> Payout:
    """The one place a payout's status changes (under a row lock); paid posts the reserved
    transfer, failed voids it. 409 `invalid_transition` for a move the table forbids."""
    locked = (
        Payout.objects.select_for_update(of=("self",)).select_related("transfer").get(pk=payout.pk)
    )
    PAYOUT_STATES.check(locked.status, to)
    if to in (PayoutStatus.PAID, PayoutStatus.FAILED):
        transfer_resolve(pending=locked.transfer, post=to == PayoutStatus.PAID)
    locked.status = to
    locked.updated_at = timezone.now()
    locked.save(update_fields=["status", "updated_at"])
    return locked

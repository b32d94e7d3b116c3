"""Revenue: a double-entry ledger (accounts, immutable transfers), revenue events, payouts.

The ledger follows TigerBeetle's model (docs/rights.md "Ledger"). Every transfer moves a
positive number of micros from one account (debit) to another (credit) in one currency, so
the sum of all debits always equals the sum of all credits. Transfers are never changed or
deleted (a database trigger refuses it, migration 0001); a mistake is corrected by a reversing
transfer. A *pending* transfer reserves money (held revenue, a payout in flight) and is later
resolved exactly once by a *post* or a *void* transfer that references it.

Each account caches four sums (posted/pending debits/credits), updated in the same
transaction as the transfer under a row lock; `manage.py ledger_check` re-derives them from the
transfers and fails on any difference.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils import timezone


class OwnerType(models.TextChoices):
    USER = "user"
    HOLDER = "holder"
    PLATFORM = "platform"
    # Where money enters or leaves the ledger (revenue received, credits issued, payouts
    # sent). Clearing accounts may go negative: their balance is what the outside owes/got.
    CLEARING = "clearing"


class AccountKind(models.TextChoices):
    EARNINGS = "earnings"  # money a party has earned (available = posted, held = pending)
    CREDITS = "credits"  # generation credits (currency CREDIT)
    CLEARING = "clearing"


class LedgerAccount(models.Model):
    # Sequential on purpose: internal only (never in an API), and the lock order.
    id = models.BigAutoField(primary_key=True)
    owner_type = models.CharField(max_length=16, choices=OwnerType.choices)
    # The user's or holder's id, the clearing account's name, "" for the platform. Not a
    # foreign key: an account (and its history) outlives a deleted user.
    owner_id = models.CharField(max_length=64, blank=True, default="")
    kind = models.CharField(max_length=16, choices=AccountKind.choices)
    currency = models.CharField(max_length=8)
    # Refuse any transfer that would take the posted+pending debits above the posted credits
    # (people's accounts); clearing accounts may go negative.
    no_overdraft = models.BooleanField(default=False)
    debits_posted = models.BigIntegerField(default=0)
    credits_posted = models.BigIntegerField(default=0)
    debits_pending = models.BigIntegerField(default=0)
    credits_pending = models.BigIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["owner_type", "owner_id", "kind", "currency"], name="ledger_account_unique"
            ),
            models.CheckConstraint(
                condition=Q(debits_posted__gte=0)
                & Q(credits_posted__gte=0)
                & Q(debits_pending__gte=0)
                & Q(credits_pending__gte=0),
                name="ledger_account_sums_nonnegative",
            ),
            # The database itself refuses an overdraft, whatever code path tried it.
            models.CheckConstraint(
                condition=Q(no_overdraft=False)
                | Q(debits_posted__lte=F("credits_posted") - F("debits_pending")),
                name="ledger_account_no_overdraft",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.owner_type}:{self.owner_id or '-'}:{self.kind}:{self.currency}"

    @property
    def available_micros(self) -> int:
        """What may be spent now: posted credits less posted and reserved debits."""
        return self.credits_posted - self.debits_posted - self.debits_pending

    @property
    def pending_micros(self) -> int:
        """Held money on its way in (pending credits)."""
        return self.credits_pending


class TransferType(models.TextChoices):
    POSTED = "posted"  # final at once
    PENDING = "pending"  # reserves; resolved once by a post or a void
    POST_PENDING = "post_pending"  # makes a pending transfer final
    VOID_PENDING = "void_pending"  # cancels a pending transfer


class Transfer(models.Model):
    """Insert-only (a trigger refuses UPDATE and DELETE)."""

    id = models.BigAutoField(primary_key=True)
    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    # The client-supplied idempotency id: the same id again returns this row when every field
    # matches and is refused when one differs.
    key = models.CharField(max_length=300, unique=True)
    type = models.CharField(max_length=16, choices=TransferType.choices)
    debit_account = models.ForeignKey(LedgerAccount, on_delete=models.PROTECT, related_name="+")
    credit_account = models.ForeignKey(LedgerAccount, on_delete=models.PROTECT, related_name="+")
    amount_micros = models.BigIntegerField()
    currency = models.CharField(max_length=8)
    # What it is for: split, credit_grant, credit_spend, payout, reversal...
    kind = models.CharField(max_length=32)
    # The split role of a revenue part (ip, cameo, ancestor, creator, platform), else "".
    role = models.CharField(max_length=16, blank=True, default="")
    # The pending transfer a post/void resolves: unique, so it is resolved at most once.
    pending = models.OneToOneField(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="resolution"
    )
    # The transfer this one reverses: unique, so a transfer is reversed at most once.
    reverses = models.OneToOneField(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="reversal"
    )
    event = models.ForeignKey(
        "RevenueEvent", null=True, blank=True, on_delete=models.PROTECT, related_name="transfers"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(amount_micros__gt=0), name="transfer_amount_positive"
            ),
            models.CheckConstraint(
                condition=~Q(debit_account=F("credit_account")), name="transfer_two_accounts"
            ),
            models.CheckConstraint(
                condition=Q(type__in=["post_pending", "void_pending"], pending__isnull=False)
                | Q(~Q(type__in=["post_pending", "void_pending"]), pending__isnull=True),
                name="transfer_resolution_names_pending",
            ),
        ]
        indexes = [
            models.Index(fields=["debit_account", "-id"], name="transfer_debit_idx"),
            models.Index(fields=["credit_account", "-id"], name="transfer_credit_idx"),
        ]

    def __str__(self) -> str:
        return f"transfer {self.public_id} {self.type} {self.amount_micros} {self.currency}"


class RevenueEvent(models.Model):
    """Money a post earned (monetised views, a paid generation, a licence fee), recorded once
    per (source, key) and split into transfers. Insert-only like transfers."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    source = models.CharField(max_length=64)
    key = models.CharField(max_length=255)
    # A plain id, not a foreign key: rights sits below feed, and revenue outlives a post.
    post_id = models.UUIDField()
    amount_micros = models.BigIntegerField()
    currency = models.CharField(max_length=8)
    held = models.BooleanField(default=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_constraint=False,
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["source", "key"], name="revenue_event_unique"),
            models.CheckConstraint(
                condition=Q(amount_micros__gt=0), name="revenue_amount_positive"
            ),
        ]
        indexes = [models.Index(fields=["post_id"], name="revenue_event_post_idx")]

    def __str__(self) -> str:
        return f"revenue {self.source}/{self.key} {self.amount_micros} {self.currency}"


class PayoutStatus(models.TextChoices):
    REQUESTED = "requested"
    APPROVED = "approved"
    PAID = "paid"
    FAILED = "failed"


class Payout(models.Model):
    """Money a user takes out. Requesting reserves it (a pending transfer to the `payouts`
    clearing account); paid posts that transfer, failed voids it (the money is available
    again). `status` changes only in rights.payouts.payout_transition."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    amount_micros = models.BigIntegerField()
    currency = models.CharField(max_length=8)
    status = models.CharField(
        max_length=16, choices=PayoutStatus.choices, default=PayoutStatus.REQUESTED
    )
    transfer = models.OneToOneField(
        Transfer, null=True, on_delete=models.PROTECT, related_name="payout"
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(amount_micros__gt=0), name="payout_amount_positive")
        ]
        indexes = [models.Index(fields=["user", "-created_at", "-id"], name="payout_user_idx")]

    def __str__(self) -> str:
        return f"payout {self.id} {self.amount_micros} {self.currency} {self.status}"

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
    # {"policy": SplitPolicy fields, "contributors": [Contributor.as_json()]}: what the split
    # was computed from (audit, and settling revenue held by a dispute).
    basis = models.JSONField(default=dict)
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


# --- The rights catalogue: holders, IP assets, claims (docs/rights.md "Catalogue") ----------


class RightsHolder(models.Model):
    """An organisation that owns IP (a studio, a publisher, an author). Staff create holders
    and add the first member; members manage the rest (rights.catalogue)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=120)
    # NFKC-casefolded name: two holders may not share a name a person could not tell apart.
    name_key = models.CharField(max_length=120, unique=True)
    verified = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return self.name


class HolderMember(models.Model):
    holder = models.ForeignKey(RightsHolder, on_delete=models.CASCADE, related_name="memberships")
    # A deleted account leaves the holder; the holder and its assets stay.
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="holder_memberships"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["holder", "user"], name="holder_member_unique")
        ]

    def __str__(self) -> str:
        return f"{self.user_id} in {self.holder_id}"


class AssetPolicy(models.TextChoices):
    # Ordered from least to most restrictive; the most restrictive match decides.
    ALLOWED = "allowed"
    LICENSED = "licensed"
    BLOCKED = "blocked"


POLICY_RANK = {AssetPolicy.ALLOWED: 0, AssetPolicy.LICENSED: 1, AssetPolicy.BLOCKED: 2}


class IPAsset(models.Model):
    """A character (or other IP) a holder registered: only what is registered is protected.

    The current policy lives here; every version is kept in IPAssetVersion, and each claim
    records the version it was made under (so a later change never rewrites an old video's
    terms). `embedding` is the MiniLM reference vector of `description` for the worker's
    semantic check, computed for `embedding_version` (rights.semantic_check.embedding_stamp).
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    holder = models.ForeignKey(RightsHolder, on_delete=models.PROTECT, related_name="assets")
    name = models.CharField(max_length=120)
    aliases = models.JSONField(default=list, blank=True)
    description = models.TextField(blank=True)
    policy = models.CharField(max_length=16, choices=AssetPolicy.choices)
    share_bps = models.PositiveIntegerField(default=0)
    fee_micros = models.BigIntegerField(default=0)
    # None: the default threshold (RIFF_RIGHTS_SEMANTIC_THRESHOLD).
    semantic_threshold = models.FloatField(null=True, blank=True)
    version = models.PositiveIntegerField(default=1)
    # A character cameo that portrays this asset: using the cameo is using the asset.
    cameo = models.OneToOneField(
        "cameos.Cameo",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="ip_asset",
    )
    embedding = models.BinaryField(null=True, blank=True, editable=False)
    embedding_version = models.PositiveIntegerField(default=0, editable=False)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(policy="licensed", share_bps__gte=1, share_bps__lte=10_000)
                | Q(~Q(policy="licensed"), share_bps=0),
                name="ip_asset_share_by_policy",
            ),
            models.CheckConstraint(
                condition=Q(fee_micros__gte=0) & (Q(policy="licensed") | Q(fee_micros=0)),
                name="ip_asset_fee_licensed_only",
            ),
        ]
        indexes = [models.Index(fields=["-created_at", "-id"], name="ip_asset_created_idx")]

    def __str__(self) -> str:
        return self.name


class IPAssetVersion(models.Model):
    """Every version of an asset's terms, insert-only: what a claim's `policy_version` means."""

    asset = models.ForeignKey(IPAsset, on_delete=models.CASCADE, related_name="versions")
    version = models.PositiveIntegerField()
    name = models.CharField(max_length=120)
    aliases = models.JSONField(default=list)
    description = models.TextField(blank=True)
    policy = models.CharField(max_length=16, choices=AssetPolicy.choices)
    share_bps = models.PositiveIntegerField(default=0)
    fee_micros = models.BigIntegerField(default=0)
    changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["asset", "version"], name="ip_asset_version_unique")
        ]

    def __str__(self) -> str:
        return f"{self.asset_id} v{self.version}"


class ClaimStatus(models.TextChoices):
    ACTIVE = "active"
    DISPUTED = "disputed"
    UPHELD = "upheld"
    RELEASED = "released"


class Claim(models.Model):
    """A video used an asset: recorded by the worker when the video is made, with the policy
    version that applied. `status` changes only in rights.claims.claim_transition."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # Plain ids: rights sits below generation and a claim outlives its video.
    video_id = models.UUIDField()
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    asset = models.ForeignKey(IPAsset, on_delete=models.PROTECT, related_name="claims")
    holder = models.ForeignKey(RightsHolder, on_delete=models.PROTECT, related_name="claims")
    policy = models.CharField(max_length=16, choices=AssetPolicy.choices)
    policy_version = models.PositiveIntegerField()
    share_bps = models.PositiveIntegerField(default=0)
    via = models.CharField(max_length=16)  # alias | semantic | cameo
    matched = models.CharField(max_length=200, blank=True)
    score = models.FloatField(null=True, blank=True)
    status = models.CharField(max_length=16, choices=ClaimStatus.choices, default="active")
    dispute_reason = models.CharField(max_length=1000, blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["video_id", "asset"], name="claim_video_asset_unique")
        ]
        # (video_id, asset) unique also serves lookups by video.
        indexes = [models.Index(fields=["holder", "-created_at"], name="claim_holder_idx")]

    def __str__(self) -> str:
        return f"claim {self.asset_id} on {self.video_id} ({self.status})"


class DisputeHold(models.Model):
    """Revenue of a video recorded while one of its claims was disputed: posted as pending
    transfers and settled once no claim on it is disputed any more (rights.claims)."""

    event = models.ForeignKey(RevenueEvent, on_delete=models.PROTECT, related_name="holds")
    claim = models.ForeignKey(Claim, on_delete=models.PROTECT, related_name="holds")
    settled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["event", "claim"], name="dispute_hold_unique")
        ]

    def __str__(self) -> str:
        return f"hold of {self.event_id} for {self.claim_id}"

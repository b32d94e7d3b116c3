"""Claims: which registered assets a video used, under which version of their terms
(docs/rights.md "Claims").

The worker records them when it makes the video (`claims_record`), from the IP decision it took
(alias, cameo and semantic matches). A claim is `active`; the video's owner may dispute it, and
members of the claiming holder uphold or release it:

    active -> disputed -> upheld | released;   active -> released (the holder waives it)

Revenue of a video recorded while one of its claims is disputed is *held*: its split is posted
as pending transfers (a DisputeHold row per disputed claim). When no claim of the event is
disputed any more, it is settled: the split is computed again from the contributors recorded
with the event, leaving out the claims that were released. If that gives the same parts, the
pending transfers are posted; otherwise they are voided and the new parts are posted. Either way
the money goes to whoever won, to the micro, and the ledger shows both steps.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from config.core.errors import Forbidden, Invalid, NotFound
from config.core.states import StateMachine

from .catalogue import AssetMatch, is_member
from .ledger import AccountKey, TransferSpec, accounts_for, transfers_apply
from .models import (
    AccountKind,
    AssetPolicy,
    Claim,
    ClaimStatus,
    DisputeHold,
    LedgerAccount,
    OwnerType,
    RevenueEvent,
    Transfer,
    TransferType,
)
from .split import Contributor, Part, Party, SplitPolicy, split_plan

C = ClaimStatus
CLAIM_STATES = StateMachine(
    "claim",
    {
        C.ACTIVE: {C.DISPUTED, C.RELEASED},
        C.DISPUTED: {C.UPHELD, C.RELEASED},
        C.UPHELD: set(),
        C.RELEASED: set(),
    },
)
# Claims that still take a share of revenue (a disputed one, held until it is decided).
EARNING = (C.ACTIVE, C.DISPUTED, C.UPHELD)
MAX_REASON_CHARS = 1000


def claims_record(*, video_id, owner, matches: Sequence[AssetMatch]) -> list[Claim]:
    """One claim per asset the video used (inside the worker's video transaction). A licensed
    asset with a per-generation fee is paid it now, by the platform (`licence_fees` clearing
    account), once per claim: all the fees in one posting, so their accounts are locked in one
    statement after the claims are written (docs/rights.md "Locks")."""
    claims, fees = [], []
    for match in matches:
        asset = match.asset
        if asset.policy == AssetPolicy.BLOCKED:
            raise ValueError("a blocked asset never reaches a video")
        claim, created = Claim.objects.get_or_create(
            video_id=video_id,
            asset=asset,
            defaults={
                "owner": owner,
                "holder_id": asset.holder_id,
                "policy": asset.policy,
                "policy_version": asset.version,
                "share_bps": asset.share_bps,
                "via": match.via,
                "matched": match.matched[:200],
                "score": match.score,
            },
        )
        claims.append(claim)
        if created and asset.policy == AssetPolicy.LICENSED and asset.fee_micros > 0:
            fees.append(claim)
    if fees:
        currency = settings.RIFF_RIGHTS_FEE_CURRENCY
        clearing_key = (
            OwnerType.CLEARING.value,
            "licence_fees",
            AccountKind.CLEARING.value,
            currency,
        )
        holder_keys = [
            (OwnerType.HOLDER.value, str(c.holder_id), AccountKind.EARNINGS.value, currency)
            for c in fees
        ]
        accounts = accounts_for([clearing_key, *holder_keys])
        transfers_apply(
            [
                TransferSpec(
                    key=f"licence_fee:{claim.pk}",
                    debit=accounts[clearing_key],
                    credit=accounts[holder_key],
                    amount_micros=claim.asset.fee_micros,
                    currency=currency,
                    kind="licence_fee",
                    role="ip",
                )
                for claim, holder_key in zip(fees, holder_keys, strict=True)
            ]
        )
    return claims


def claim_contributors(*, video_id) -> list[Contributor]:
    """The `ip` contributors of a video's revenue: one per licensed claim that still earns,
    with the share of the version it was made under."""
    claims = Claim.objects.filter(
        video_id=video_id, policy=AssetPolicy.LICENSED, status__in=EARNING, share_bps__gt=0
    ).order_by("created_at", "id")
    return [
        Contributor(
            role="ip",
            party=Party("holder", str(c.holder_id)),
            share_bps=c.share_bps,
            claim=str(c.pk),
        )
        for c in claims
    ]


LOCK_CLAIMS_SQL = "SELECT id FROM rights_claim WHERE id = ANY(%s) ORDER BY id FOR KEY SHARE"


def lock_claims(contributors: Sequence[Contributor]) -> tuple[list[Contributor], list[Claim]]:
    """Inside the revenue event's transaction: share-locks the claims the contributors name
    (in id order; a claim's decision takes FOR UPDATE on it, so the two wait for each other
    instead of crossing), then reads their state as it is now. Returns the contributors
    without the claims released meanwhile, and the claims that are disputed."""
    ids = sorted({c.claim for c in contributors if c.role == "ip" and c.claim})
    if not ids:
        return list(contributors), []
    with connection.cursor() as cursor:
        cursor.execute(LOCK_CLAIMS_SQL, [[uuid.UUID(i) for i in ids]])
    claims = {str(c.pk): c for c in Claim.objects.filter(pk__in=ids).order_by("pk")}
    kept = [
        c
        for c in contributors
        if not (c.role == "ip" and c.claim and claims[c.claim].status == C.RELEASED)
    ]
    disputed = [claims[i] for i in ids if claims[i].status == C.DISPUTED]
    return kept, disputed


# --- who may see and act on a claim ---------------------------------------------------------


def claim_for(*, claim_id, user) -> Claim:
    """The claim when `user` is the video's owner or a member of the claiming holder (or
    staff); 404 otherwise, so a stranger learns nothing."""
    claim = Claim.objects.select_related("asset", "holder").filter(pk=claim_id).first()
    if claim is None or not (
        user.is_staff or claim.owner_id == user.pk or is_member(user, claim.holder_id)
    ):
        raise NotFound("No such claim.")
    return claim


@transaction.atomic
def claim_transition(*, claim: Claim, to: str, actor, reason: str = "") -> Claim:
    """The only writer of `Claim.status`. The owner disputes; holder members uphold or
    release; resolving a dispute settles the revenue held meanwhile."""
    locked = Claim.objects.select_for_update().select_related("asset", "holder").get(pk=claim.pk)
    if to == C.DISPUTED:
        if locked.owner_id != actor.pk:
            raise Forbidden("Only the video's owner may dispute its claims.")
        reason = " ".join(reason.split())
        if not reason:
            raise Invalid("Say why you dispute the claim.", fields={"reason": ["Required."]})
        if len(reason) > MAX_REASON_CHARS:
            raise Invalid("The reason is too long.", fields={"reason": ["Too long."]})
    elif not is_member(actor, locked.holder_id):
        raise Forbidden("Only members of the claiming holder may decide a claim.")
    CLAIM_STATES.check(locked.status, to)
    was = locked.status
    locked.status = to
    locked.updated_at = timezone.now()
    fields = ["status", "updated_at"]
    if to == C.DISPUTED:
        locked.dispute_reason = reason
        fields.append("dispute_reason")
    else:
        locked.resolved_by = actor
        fields.append("resolved_by")
    locked.save(update_fields=fields)
    if was == C.DISPUTED:
        # Every held event whose split named this claim may be settled now (also those held
        # by another claim: they wait until none of their claims is disputed).
        waiting = RevenueEvent.objects.filter(
            holds__settled_at__isnull=True,
            basis__contributors__contains=[{"claim": str(locked.pk)}],
        ).distinct()
        disputes_settle(events=list(waiting))
    return locked


# --- held revenue -------------------------------------------------------------------------


def _key(transfer_like) -> tuple:
    return (transfer_like.role, transfer_like.credit_account_id, transfer_like.amount_micros)


@dataclass
class _Settlement:
    """What settling one held event posts: its pending parts and the parts of the new split
    (with the keys of their accounts, opened on first use)."""

    event: RevenueEvent
    holds: list[DisputeHold]
    pending: list[Transfer]
    parts: list[tuple[Part, AccountKey]]


def _settlement(event: RevenueEvent) -> _Settlement | None:
    """Under the event's lock: None when it is settled already or a claim of it is still
    disputed, else the split without the claims that were released."""
    holds = list(DisputeHold.objects.filter(event=event, settled_at__isnull=True))
    if not holds:
        return None
    basis = [Contributor.from_json(c) for c in event.basis["contributors"]]
    ids = [c.claim for c in basis if c.claim]
    statuses = {
        str(pk): status
        for pk, status in Claim.objects.filter(pk__in=ids).values_list("pk", "status")
    }
    if C.DISPUTED in statuses.values():
        return None
    released = {pk for pk, status in statuses.items() if status == C.RELEASED}
    kept = [c for c in basis if not (c.role == "ip" and c.claim in released)]
    parts = split_plan(
        amount_micros=event.amount_micros,
        policy=SplitPolicy(**event.basis["policy"]),
        contributors=kept,
    )
    pending = list(
        event.transfers.filter(kind="split", type=TransferType.PENDING, resolution__isnull=True)
        .select_related("debit_account", "credit_account")
        .order_by("id")
    )
    return _Settlement(
        event=event,
        holds=holds,
        pending=pending,
        parts=[
            (p, (p.party.type, p.party.id, AccountKind.EARNINGS.value, event.currency))
            for p in parts
        ],
    )


def _settlement_specs(
    s: _Settlement, accounts: dict[AccountKey, LedgerAccount]
) -> list[TransferSpec]:
    event = s.event
    new = [(p, accounts[k]) for p, k in s.parts if p.amount_micros > 0]
    same = Counter(_key(t) for t in s.pending) == Counter(
        (p.role, a.pk, p.amount_micros) for p, a in new
    )
    # A client's own hold (`hold: true`) stays pending until the client releases it.
    if same and event.held:
        return []
    if same:
        return [_resolution(t, TransferType.POST_PENDING, "settle-post") for t in s.pending]
    specs = [_resolution(t, TransferType.VOID_PENDING, "settle-void") for t in s.pending]
    debit = s.pending[0].debit_account if s.pending else accounts[_revenue_clearing(event)]
    specs += [
        TransferSpec(
            key=f"revenue:{event.pk}:settled:{i}",
            debit=debit,
            credit=account,
            amount_micros=part.amount_micros,
            currency=event.currency,
            kind="split",
            role=part.role,
            type=TransferType.PENDING if event.held else TransferType.POSTED,
            event=event,
        )
        for i, (part, account) in enumerate(new)
    ]
    return specs


def _revenue_clearing(event: RevenueEvent) -> AccountKey:
    return (OwnerType.CLEARING.value, "revenue", AccountKind.CLEARING.value, event.currency)


@transaction.atomic
def disputes_settle(*, events: Sequence[RevenueEvent]) -> list[Transfer]:
    """Settles the held events none of whose claims is disputed any more; nothing for the
    others. Each runs once: its holds are marked settled under its row lock.

    Every settlement is posted by one `transfers_apply`, so the decision locks all the
    accounts it touches in one statement, in account order, after the events (in id order):
    settled one posting at a time, it would hold the first event's accounts while waiting
    for the next event's, against the account order (docs/rights.md "Locks").
    """
    ids = sorted({e.pk for e in events})
    if not ids:
        return []
    # NO KEY: a posting that only references the event (a client's release of its parts)
    # never waits for this lock.
    locked = list(
        RevenueEvent.objects.select_for_update(no_key=True).filter(pk__in=ids).order_by("pk")
    )
    settlements = [s for event in locked if (s := _settlement(event)) is not None]
    keys: list[AccountKey] = [k for s in settlements for _, k in s.parts]
    keys += [_revenue_clearing(s.event) for s in settlements if not s.pending]
    accounts = accounts_for(keys) if keys else {}
    done = transfers_apply([spec for s in settlements for spec in _settlement_specs(s, accounts)])
    holds = [h.pk for s in settlements for h in s.holds]
    DisputeHold.objects.filter(pk__in=holds).update(settled_at=timezone.now())
    return done


def _resolution(pending: Transfer, type_: str, suffix: str) -> TransferSpec:
    return TransferSpec(
        key=f"{pending.key}:{suffix}",
        debit=pending.debit_account,
        credit=pending.credit_account,
        amount_micros=pending.amount_micros,
        currency=pending.currency,
        kind=pending.kind,
        type=type_,
        role=pending.role,
        pending=pending,
        event=pending.event,
    )

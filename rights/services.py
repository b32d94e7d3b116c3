"""Revenue writes: revenue events split onto the ledger, held revenue, credits.

The ledger primitives (accounts, transfers, locks, idempotency) are in rights.ledger; the
split formula in rights.split. docs/rights.md describes both.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from dataclasses import dataclass

from django.conf import settings
from django.db import IntegrityError, transaction

from config.core import hooks
from config.core.errors import BACKEND_DOWN_ERRORS, Conflict, Invalid, NotFound
from config.core.redis import degraded, publish, redis_client

from .catalogue import IPDecision, ip_decision
from .claims import lock_claims
from .hooks import REVENUE_CONTRIBUTORS
from .ledger import (
    IdempotencyMismatch,
    TransferSpec,
    account_for,
    accounts_for,
    clearing_account,
    transfer_reverse,
    transfers_apply,
)
from .models import (
    AccountKind,
    DisputeHold,
    IPAsset,
    OwnerType,
    RevenueEvent,
    Transfer,
    TransferType,
)
from .split import Contributor, Party, SplitPolicy, split_plan

CREDIT = "CREDIT"  # the currency of generation credits; one unit is one credit
CURRENCY = re.compile(r"[A-Z]{3}")
# 10^15 micros = a billion units: far above any single event, far below bigint overflow
# even summed over millions of events.
MAX_AMOUNT_MICROS = 10**15
MAX_CREDITS = 1_000_000


def split_policy() -> SplitPolicy:
    return SplitPolicy(
        platform_fee_bps=settings.RIFF_REVENUE_PLATFORM_FEE_BPS,
        ip_cap_bps=settings.RIFF_REVENUE_IP_CAP_BPS,
        cameo_bps=settings.RIFF_REVENUE_CAMEO_BPS,
        cameo_cap_bps=settings.RIFF_REVENUE_CAMEO_CAP_BPS,
        ancestor_bps=settings.RIFF_REVENUE_ANCESTOR_BPS,
        ancestor_max_depth=settings.RIFF_REVENUE_ANCESTOR_MAX_DEPTH,
    )


def revenue_contributors(*, post_id) -> list[Contributor]:
    """Everyone the registered `revenue.contributors` hooks name for the post."""
    found: list[Contributor] = []
    for answer in hooks.run(REVENUE_CONTRIBUTORS.name, post_id=post_id):
        found.extend(answer or [])
    return found


def ip_check(*, user, prompt: str) -> tuple[IPDecision, bool]:
    """`GET /rights/check`: the alias decision here, plus the semantic matches a worker
    computes (MiniLM lives in the `worker` extra). When no worker answers within
    RIFF_RIGHTS_CHECK_TIMEOUT seconds, or Redis is down, the alias decision stands alone
    (second value False)."""
    if not settings.RIFF_RIGHTS_SEMANTIC:
        return ip_decision(user=user, prompt=prompt), False
    if not IPAsset.objects.exclude(description="").exists():
        # Nothing has a reference text: the semantic check has nothing to add.
        return ip_decision(user=user, prompt=prompt), True
    answer = _semantic_answer(prompt)
    extra = answer if answer is not None else []
    return ip_decision(user=user, prompt=prompt, extra=extra), answer is not None


def _semantic_answer(prompt: str) -> list | None:
    """Asks a worker (rights.tasks.ip_semantic_check) and waits on a one-off Redis list for
    its answer. Both legs use the fast-failing Redis settings (config.core.redis), so a down
    or frozen Redis costs about two seconds, never a hang."""
    from .tasks import ip_semantic_check

    timeout = settings.RIFF_RIGHTS_CHECK_TIMEOUT
    reply_key = f"riff:rights:check:{uuid.uuid4().hex}"
    try:
        publish(ip_semantic_check, prompt, reply_key, expires=timeout)
        client = redis_client()
        deadline = time.monotonic() + timeout
        # Short BLPOPs: each must return before the client's own socket timeout.
        while (left := deadline - time.monotonic()) > 0:
            got = client.blpop([reply_key], timeout=min(1.0, max(left, 0.01)))
            if got:
                return json.loads(got[1])
    except BACKEND_DOWN_ERRORS:
        degraded("rights_check")
    return None


def party_account(*, party: Party, currency: str, kind: str = AccountKind.EARNINGS):
    return account_for(owner_type=party.type, owner_id=party.id, kind=kind, currency=currency)


@dataclass
class RecordedEvent:
    event: RevenueEvent
    transfers: list[Transfer]
    replayed: bool


def _same_event(event: RevenueEvent, *, post_id, amount_micros, currency, held) -> bool:
    return (
        str(event.post_id) == str(post_id)
        and event.amount_micros == amount_micros
        and event.currency == currency
        and event.held == held
    )


def _replay(source: str, key: str, **fields) -> RecordedEvent | None:
    event = RevenueEvent.objects.filter(source=source, key=key).first()
    if event is None:
        return None
    if not _same_event(event, **fields):
        raise IdempotencyMismatch(
            "This revenue event id was already recorded with different fields."
        )
    # The parts themselves, not the posts/voids that later resolved held ones.
    transfers = list(
        event.transfers.filter(
            kind="split", type__in=[TransferType.POSTED, TransferType.PENDING]
        ).order_by("id")
    )
    return RecordedEvent(event=event, transfers=transfers, replayed=True)


def revenue_event_record(
    *,
    source: str,
    key: str,
    post_id: uuid.UUID | str,
    amount_micros: int,
    currency: str,
    held: bool = False,
    created_by=None,
) -> RecordedEvent:
    """Records revenue of a post once per (source, key) and posts its split.

    The same (source, key) with the same fields returns the original event and transfers (the
    split is never recomputed, so it never changes); with other fields it is refused (422
    `idempotency_mismatch`). `held` revenue is posted as pending transfers, released or voided
    later (revenue_event_resolve); so is revenue of a video with a disputed claim, settled when
    the dispute is decided (rights.claims). 404 when no hook knows the post's creator.
    """
    if not CURRENCY.fullmatch(currency or ""):
        raise Invalid("currency is a 3-letter ISO code.", fields={"currency": ["Invalid."]})
    if not 0 < amount_micros <= MAX_AMOUNT_MICROS:
        raise Invalid(
            "amount_micros must be positive.", fields={"amount_micros": ["Out of range."]}
        )
    fields = {
        "post_id": post_id,
        "amount_micros": amount_micros,
        "currency": currency,
        "held": held,
    }
    found = _replay(source, key, **fields)
    if found is not None:
        return found
    contributors = revenue_contributors(post_id=post_id)
    if not any(c.role == "creator" for c in contributors):
        raise NotFound("No such post.", fields={"post_id": ["No such post."]})
    policy = split_policy()
    try:
        with transaction.atomic():
            # The claims first, so a dispute decided meanwhile either happened before (and is
            # read below) or waits for this event (and then settles its hold): lock order is
            # claims -> event -> accounts everywhere (rights.claims).
            contributors, disputed = lock_claims(contributors)
            parts = split_plan(
                amount_micros=amount_micros, policy=policy, contributors=contributors
            )
            # A disputed claim holds the whole event until the dispute is decided.
            pending = held or bool(disputed)
            clearing_key = (
                OwnerType.CLEARING.value,
                "revenue",
                AccountKind.CLEARING.value,
                currency,
            )
            part_keys = [
                (p.party.type, p.party.id, AccountKind.EARNINGS.value, currency) for p in parts
            ]
            found = accounts_for([clearing_key, *part_keys])
            clearing = found[clearing_key]
            credit_accounts = [found[k] for k in part_keys]
            event = RevenueEvent.objects.create(
                source=source,
                key=key,
                post_id=post_id,
                amount_micros=amount_micros,
                currency=currency,
                held=held,
                created_by=created_by,
                # What the split was computed from, so a held event can be settled later
                # exactly as it would have been split without the claims that lost.
                basis={
                    "policy": policy.as_json(),
                    "contributors": [c.as_json() for c in contributors],
                },
            )
            DisputeHold.objects.bulk_create(DisputeHold(event=event, claim=c) for c in disputed)
            specs = [
                TransferSpec(
                    key=f"revenue:{event.pk}:{i}",
                    debit=clearing,
                    credit=account,
                    amount_micros=part.amount_micros,
                    currency=currency,
                    kind="split",
                    role=part.role,
                    type=TransferType.PENDING if pending else TransferType.POSTED,
                    event=event,
                )
                for i, (part, account) in enumerate(zip(parts, credit_accounts, strict=True))
                if part.amount_micros > 0
            ]
            transfers = transfers_apply(specs, fresh=True)
    except IntegrityError:
        # The same (source, key) committed by a concurrent request while we split.
        found = _replay(source, key, **fields)
        if found is None:
            raise
        return found
    return RecordedEvent(event=event, transfers=transfers, replayed=False)


def revenue_event_resolve(*, event: RevenueEvent, release: bool) -> list[Transfer]:
    """Releases (posts) or voids every still-pending part of held revenue, all or nothing.
    Once per event: a second call with the same choice replays, with the other choice is 409
    `already_resolved`."""
    if DisputeHold.objects.filter(event=event, settled_at__isnull=True).exists():
        raise Conflict(
            "A claim on this video is disputed: its revenue waits for the decision.",
            code="disputed",
        )
    # Parts a dispute settlement voided are not the client's to resolve any more.
    pending = list(
        event.transfers.filter(type=TransferType.PENDING)
        .exclude(resolution__key__endswith=":settle-void")
        .order_by("id")
    )
    verb = "post" if release else "void"
    specs = [
        TransferSpec(
            key=f"{t.key}:{verb}",
            debit=t.debit_account,
            credit=t.credit_account,
            amount_micros=t.amount_micros,
            currency=t.currency,
            kind=t.kind,
            type=TransferType.POST_PENDING if release else TransferType.VOID_PENDING,
            role=t.role,
            pending=t,
            event=event,
        )
        for t in pending
    ]
    return transfers_apply(specs)


# --- credits ----------------------------------------------------------------------------------


def credits_account(*, user):
    return account_for(
        owner_type=OwnerType.USER, owner_id=str(user.pk), kind=AccountKind.CREDITS, currency=CREDIT
    )


def credits_grant(*, user, credits: int, key: str) -> Transfer:
    """Grants `credits` (a purchase completed elsewhere); idempotent by `key`."""
    if not 0 < credits <= MAX_CREDITS:
        raise Invalid("credits must be 1..1000000.", fields={"credits": ["Out of range."]})
    spec = TransferSpec(
        key=f"credit_grant:{key}",
        debit=clearing_account("credits_issued", CREDIT),
        credit=credits_account(user=user),
        amount_micros=credits,
        currency=CREDIT,
        kind="credit_grant",
    )
    return transfers_apply([spec])[0]


def credit_spend(*, user, key: str) -> Transfer:
    """Spends one credit (a generation beyond the daily quota); 409 `insufficient_funds` when
    the user has none. `key` names what it paid for (e.g. the generation id)."""
    spec = TransferSpec(
        key=f"credit_spend:{key}",
        debit=credits_account(user=user),
        credit=clearing_account("credits_spent", CREDIT),
        amount_micros=1,
        currency=CREDIT,
        kind="credit_spend",
    )
    return transfers_apply([spec])[0]


def credit_refund(*, spend: Transfer) -> Transfer:
    """Gives a spent credit back (failed or cancelled generation), exactly once."""
    return transfer_reverse(transfer=spend)


def credit_refund_for(*, key: str) -> Transfer | None:
    """Refunds the credit spent under `key`, if one was; a second call returns the same
    reversal (the reversal's own key makes it happen once)."""
    spend = Transfer.objects.filter(key=f"credit_spend:{key}").first()
    return credit_refund(spend=spend) if spend is not None else None


def new_key() -> str:
    return uuid.uuid4().hex

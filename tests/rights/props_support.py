"""Helpers of test_ledger_properties: the claims every example records, the plan of
operations, their execution (alone or on threads), and the model the sequential part of an
example is checked against, operation by operation."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from django.db import connection

from config.core.errors import Conflict
from feed.models import Post
from feed.revenue import post_contributors
from rights.catalogue import AssetMatch, asset_create
from rights.claims import CLAIM_STATES, EARNING, claim_transition, claims_record
from rights.ledger import IdempotencyMismatch, InsufficientFunds
from rights.models import Claim, ClaimStatus, LedgerAccount, RevenueEvent, Transfer
from rights.services import (
    credit_refund_for,
    credit_spend,
    credits_grant,
    revenue_contributors,
    revenue_event_record,
    revenue_event_resolve,
    split_policy,
)
from rights.split import Contributor, Party, SplitPolicy, split_plan

CURRENCIES = ("USD", "EUR", "JPY")
SOURCE = "prop"
# The claims every example records afresh (claims are one-way, so each example needs new
# ones): (post index, holder index, share_bps, licence fee in micros). Post 0 asks 105 % of
# the net for IP, over the 50 % cap; post 5 has two claims of one holder (one merged part);
# the claim on post 2 costs a licence fee (paid in USD when it is recorded).
CLAIMS = (
    (0, 0, 1500, 0),
    (0, 1, 9000, 0),
    (2, 0, 2500, 250_000),
    (5, 0, 1000, 0),
    (5, 0, 2000, 0),
)
# Operation -> the state it asks for: the owner disputes, a member of the holder decides.
TRANSITIONS = {
    "dispute": ClaimStatus.DISPUTED,
    "uphold": ClaimStatus.UPHELD,
    "release": ClaimStatus.RELEASED,
}
REASONS = ("It is my own character.", "  fair\tuse  ", "Licensed elsewhere.")
CREDIT_USERS = 3
# Operation kinds and their weights (of 52): revenue events, claim transitions, credits.
D, R = ClaimStatus.DISPUTED.value, ClaimStatus.RELEASED.value
KINDS = {
    "new": 20,
    "retry": 10,
    "mismatch": 3,
    "resolve": 5,
    "dispute": 2,
    "uphold": 1,
    "release": 1,
    "grant": 3,
    "spend": 5,
    "refund": 2,
}

Line = tuple[str, str, str, int]  # (role, party type, party id, micros): one non-zero part


@dataclass(frozen=True)
class Attempt:
    # record | resolve | dispute | uphold | release | grant | spend | refund
    op: str
    key: str  # the event / grant / spend id; "claim<k>" for a transition
    # record: (post index, amount, currency, held); resolve: (release,);
    # transitions: (claim index, reason); grant: (user index, credits); spend, refund: (user,)
    fields: tuple


@dataclass
class Outcome:
    attempt: Attempt
    # ok | mismatch | missing | none (nothing to refund) | the code of a 409
    result: str
    event_id: uuid.UUID | None = None
    transfer_ids: list[int] = field(default_factory=list)
    replayed: bool = False
    parts: list[tuple[str, int, str]] = field(default_factory=list)  # (role, micros, type)
    phase: str = "seq"  # seq | threads
    # Sequential replays of a record: whether the model says it answers with settled parts.
    with_settled: bool | None = None


@dataclass
class Example:
    """One hypothesis example: its own prefix, claims, and what it starts from."""

    prefix: str
    post_ids: list
    claims: list[Claim]  # by claim index (the order of CLAIMS)
    owners: list  # the user who may dispute claim k (its video's owner)
    members: list  # a member of the holder of claim k (may decide it)
    credit_users: list
    # post index -> the contributors besides this example's claims: those the feed hook names
    # (creator, cameos, claims of earlier examples) and after them the other hooks' (remix:
    # ancestors). The hook lists a video's claims last, so this example's go in between.
    static: dict[int, tuple[list[Contributor], list[Contributor]]]
    on_post: dict[int, list[int]]  # post index -> its claims, in the order the hook lists them
    policy: SplitPolicy = field(default_factory=split_policy)

    @property
    def index(self) -> dict[str, int]:
        return {str(c.pk): k for k, c in enumerate(self.claims)}

    def contributor(self, k: int) -> Contributor:
        claim = self.claims[k]
        return Contributor(
            role="ip",
            party=Party("holder", str(claim.holder_id)),
            share_bps=claim.share_bps,
            claim=str(claim.pk),
        )

    def contributors(self, post: int, basis: Iterable[int], minus=frozenset()) -> list:
        head, tail = self.static[post]
        return [*head, *(self.contributor(k) for k in basis if k not in minus), *tail]

    def lines(self, post: int, amount: int, basis: Iterable[int], minus=frozenset()) -> list[Line]:
        parts = split_plan(
            amount_micros=amount,
            policy=self.policy,
            contributors=self.contributors(post, basis, minus),
        )
        return [
            (p.role, p.party.type, p.party.id, p.amount_micros) for p in parts if p.amount_micros
        ]


def example_setup(*, post_ids, holders, members, credit_users) -> Example:
    """Fresh assets (one per CLAIMS row) claimed onto the posts' videos by their owners."""
    prefix = uuid.uuid4().hex[:12]
    static = {}
    for i, pk in enumerate(post_ids):
        everyone, head = revenue_contributors(post_id=pk), post_contributors(post_id=pk)
        assert everyone[: len(head)] == head
        static[i] = (head, everyone[len(head) :])
    posts = {p.pk: p for p in Post.objects.filter(pk__in=post_ids).select_related("author")}
    assets = [
        asset_create(
            holder=holders[h],
            actor=members[h],
            data={
                "name": f"Prop {prefix} {i}",
                "policy": "licensed",
                "share_bps": share,
                "fee_micros": fee,
            },
        )
        for i, (_, h, share, fee) in enumerate(CLAIMS)
    ]
    claims: list = [None] * len(CLAIMS)
    for post in sorted({row[0] for row in CLAIMS}):
        mine = [i for i, row in enumerate(CLAIMS) if row[0] == post]
        record = posts[post_ids[post]]
        made = claims_record(
            video_id=record.video_id,
            owner=record.author,
            matches=[AssetMatch(assets[i], "alias", assets[i].name, "prompt") for i in mine],
        )
        for i, claim in zip(mine, made, strict=True):
            claims[i] = claim
    order = list(
        Claim.objects.filter(pk__in=[c.pk for c in claims])
        .order_by("created_at", "id")
        .values_list("pk", flat=True)
    )
    by_pk = {c.pk: k for k, c in enumerate(claims)}
    on_post = {i: [] for i in range(len(post_ids))}
    for pk in order:
        on_post[CLAIMS[by_pk[pk]][0]].append(by_pk[pk])
    return Example(
        prefix=prefix,
        post_ids=list(post_ids),
        claims=claims,
        owners=[posts[post_ids[row[0]]].author for row in CLAIMS],
        members=[members[row[1]] for row in CLAIMS],
        credit_users=list(credit_users),
        static=static,
        on_post=on_post,
    )


def plan(ops, prefix: str) -> list[Attempt]:
    attempts: list[Attempt] = []
    news: list[Attempt] = []
    grants: list[Attempt] = []
    spends: list[Attempt] = []
    for kind, post, amount, currency, held, pick in ops:
        n = len(attempts)
        if kind in TRANSITIONS:
            k = pick % len(CLAIMS)
            attempt = Attempt(kind, f"claim{k}", (k, REASONS[pick % len(REASONS)]))
        elif kind == "grant":
            if grants and pick % 4 == 0:
                attempt = grants[pick % len(grants)]  # a retry
            elif grants and pick % 4 == 1:
                earlier = grants[pick % len(grants)]  # the same id with other credits
                attempt = Attempt("grant", earlier.key, (earlier.fields[0], earlier.fields[1] + 1))
            else:
                attempt = Attempt("grant", f"{prefix}-g{n}", (post % CREDIT_USERS, amount % 2 + 1))
                grants.append(attempt)
        elif kind == "spend":
            if spends and pick % 3 == 0:
                attempt = spends[pick % len(spends)]  # a retry
            else:
                attempt = Attempt("spend", f"{prefix}-s{n}", (post % CREDIT_USERS,))
                spends.append(attempt)
        elif kind == "refund":
            if spends:
                earlier = spends[pick % len(spends)]
                attempt = Attempt("refund", earlier.key, earlier.fields)
            else:  # nothing was ever spent under this id
                attempt = Attempt("refund", f"{prefix}-s{n}", (post % CREDIT_USERS,))
        elif kind == "new" or not news:
            attempt = Attempt("record", f"{prefix}-{n}", (post, amount, currency, held))
            news.append(attempt)
        else:
            earlier = news[pick % len(news)]
            if kind == "retry":
                attempt = earlier
            elif kind == "mismatch":
                p, amt, cur, h = earlier.fields
                attempt = Attempt("record", earlier.key, (p, amt + 1, cur, h))
            else:
                attempt = Attempt("resolve", earlier.key, (pick % 2 == 0,))
        attempts.append(attempt)
    return attempts


def execute(attempt: Attempt, ex: Example) -> Outcome:
    op = attempt.op
    if op == "record":
        post, amount, currency, held = attempt.fields
        try:
            recorded = revenue_event_record(
                source=SOURCE,
                key=attempt.key,
                post_id=ex.post_ids[post],
                amount_micros=amount,
                currency=currency,
                held=held,
            )
        except IdempotencyMismatch:
            return Outcome(attempt, "mismatch")
        ts = recorded.transfers
        return Outcome(
            attempt,
            "ok",
            recorded.event.pk,
            [t.pk for t in ts],
            recorded.replayed,
            [(t.role, t.amount_micros, t.type) for t in ts],
        )
    if op == "resolve":
        event = RevenueEvent.objects.filter(source=SOURCE, key=attempt.key).first()
        if event is None or not event.held:
            return Outcome(attempt, "missing")
        try:
            revenue_event_resolve(event=event, release=attempt.fields[0])
        except Conflict as exc:
            assert exc.code in ("already_resolved", "disputed"), exc.code
            return Outcome(attempt, exc.code, event.pk)
        return Outcome(attempt, "ok", event.pk)
    if op in TRANSITIONS:
        k, reason = attempt.fields
        actor = ex.owners[k] if op == "dispute" else ex.members[k]
        try:
            claim_transition(claim=ex.claims[k], to=TRANSITIONS[op], actor=actor, reason=reason)
        except Conflict as exc:
            assert exc.code == "invalid_transition", exc.code
            return Outcome(attempt, exc.code)
        return Outcome(attempt, "ok")
    user = ex.credit_users[attempt.fields[0]]
    try:
        if op == "grant":
            done = credits_grant(user=user, credits=attempt.fields[1], key=attempt.key)
        elif op == "spend":
            done = credit_spend(user=user, key=attempt.key)
        else:
            done = credit_refund_for(key=attempt.key)
    except IdempotencyMismatch:
        return Outcome(attempt, "mismatch")
    except InsufficientFunds as exc:
        return Outcome(attempt, exc.code)
    if done is None:
        return Outcome(attempt, "none")
    return Outcome(attempt, "ok", transfer_ids=[done.pk])


def run_threads(attempts: Sequence[Attempt], ex: Example, threads: int) -> list[Outcome]:
    outcomes: list[Outcome] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def work(share):
        try:
            for attempt in share:
                outcome = execute(attempt, ex)
                outcome.phase = "threads"
                with lock:
                    outcomes.append(outcome)
        except BaseException as exc:  # surfaced below, with the thread's traceback
            errors.append(exc)
        finally:
            connection.close()

    workers = [threading.Thread(target=work, args=(attempts[i::threads],)) for i in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    if errors:
        raise errors[0]
    return outcomes


# --- the model ----------------------------------------------------------------------------


@dataclass
class ModelEvent:
    key: str
    fields: tuple  # (post index, amount, currency, held)
    basis: tuple[int, ...]  # this example's claims in effect when it was recorded, hook order
    holds: frozenset[int]  # those of them disputed then
    event_id: uuid.UUID | None = None
    original_ids: list[int] = field(default_factory=list)
    recorded_in: str = "seq"  # seq | threads
    settled_in: str = ""  # seq | threads | final, for an event with holds
    released: frozenset[int] | None = None  # the claims released when it was settled
    resolution: bool | None = None  # the client's choice (sequential part)

    @property
    def post(self) -> int:
        return self.fields[0]


class Model:
    """What the sequential part must do, operation by operation: claim states, which revenue
    is held by a dispute and how it settles (rights.claims), held revenue, credits."""

    def __init__(self, ex: Example, credits: Sequence[int]) -> None:
        self.ex = ex
        self.status = [ClaimStatus.ACTIVE.value] * len(ex.claims)
        self.events: dict[str, ModelEvent] = {}
        self.balance = list(credits)
        self.grants: dict[str, tuple[tuple, int]] = {}  # key -> (fields, transfer id)
        self.spends: dict[str, int] = {}
        self.refunds: dict[str, int] = {}

    def in_effect(self, post: int) -> tuple[int, ...]:
        return tuple(k for k in self.ex.on_post[post] if self.status[k] in EARNING)

    def changed(self, ev: ModelEvent, released) -> bool:
        """Whether settling `ev` without `released` gives other parts than it was split into."""
        amount = ev.fields[1]
        before = self.ex.lines(ev.post, amount, ev.basis)
        return sorted(before) != sorted(self.ex.lines(ev.post, amount, ev.basis, released))

    def settle(self, phase: str) -> None:
        """Settles every held event none of whose claims is disputed any more."""
        for ev in self.events.values():
            if ev.holds and not ev.settled_in and D not in {self.status[k] for k in ev.basis}:
                ev.released = frozenset(k for k in ev.basis if self.status[k] == R)
                ev.settled_in = phase

    def apply(self, o: Outcome) -> None:
        a = o.attempt
        handler = "transition" if a.op in TRANSITIONS else a.op
        getattr(self, f"_{handler}")(a, o)

    def _record(self, a: Attempt, o: Outcome) -> None:
        ev = self.events.get(a.key)
        if ev is None:
            post, amount, _, held = a.fields
            basis = self.in_effect(post)
            holds = frozenset(k for k in basis if self.status[k] == ClaimStatus.DISPUTED)
            assert o.result == "ok" and not o.replayed, (a, o.result)
            kind = "pending" if held or holds else "posted"
            lines = self.ex.lines(post, amount, basis)
            assert o.parts == [(r, n, kind) for r, _, _, n in lines], (a, o.parts, lines)
            self.events[a.key] = ModelEvent(
                a.key, a.fields, basis, holds, o.event_id, o.transfer_ids
            )
        elif a.fields != ev.fields:
            assert o.result == "mismatch", (a, o.result)
        else:
            assert o.result == "ok" and o.replayed and o.event_id == ev.event_id, (a, o.result)
            assert o.transfer_ids[: len(ev.original_ids)] == ev.original_ids, a
            o.with_settled = bool(ev.settled_in) and self.changed(ev, ev.released)

    def _resolve(self, a: Attempt, o: Outcome) -> None:
        ev = self.events.get(a.key)
        if ev is None or not ev.fields[3]:
            assert o.result == "missing", (a, o.result)
        elif ev.holds and not ev.settled_in:
            assert o.result == "disputed", (a, o.result)
        elif ev.resolution is None or ev.resolution == a.fields[0]:
            assert o.result == "ok", (a, o.result)
            ev.resolution = a.fields[0]
        else:
            assert o.result == "already_resolved", (a, o.result)

    def _transition(self, a: Attempt, o: Outcome) -> None:
        k = a.fields[0]
        to = TRANSITIONS[a.op]
        if CLAIM_STATES.can(self.status[k], to):
            assert o.result == "ok", (a, self.status[k], o.result)
            self.status[k] = to.value
            self.settle("seq")
        else:
            assert o.result == "invalid_transition", (a, self.status[k], o.result)

    def _grant(self, a: Attempt, o: Outcome) -> None:
        seen = self.grants.get(a.key)
        if seen is None:
            assert o.result == "ok", (a, o.result)
            self.grants[a.key] = (a.fields, o.transfer_ids[0])
            self.balance[a.fields[0]] += a.fields[1]
        elif seen[0] == a.fields:
            assert o.result == "ok" and o.transfer_ids == [seen[1]], (a, o.result)
        else:
            assert o.result == "mismatch", (a, o.result)

    def _spend(self, a: Attempt, o: Outcome) -> None:
        user = a.fields[0]
        if a.key in self.spends:
            assert o.result == "ok" and o.transfer_ids == [self.spends[a.key]], (a, o.result)
        elif self.balance[user] > 0:
            assert o.result == "ok", (a, self.balance[user], o.result)
            self.spends[a.key] = o.transfer_ids[0]
            self.balance[user] -= 1
        else:
            assert o.result == "insufficient_funds", (a, o.result)

    def _refund(self, a: Attempt, o: Outcome) -> None:
        if a.key not in self.spends:
            assert o.result == "none", (a, o.result)
        elif a.key in self.refunds:
            assert o.result == "ok" and o.transfer_ids == [self.refunds[a.key]], (a, o.result)
        else:
            assert o.result == "ok", (a, o.result)
            self.refunds[a.key] = o.transfer_ids[0]
            self.balance[a.fields[0]] += 1


# --- reading the ledger -------------------------------------------------------------------


def last_transfer_id() -> int:
    return Transfer.objects.order_by("-id").values_list("id", flat=True).first() or 0


def account_sums() -> dict[tuple[str, str, str, str], tuple[int, int, int, int]]:
    """(owner type, owner id, kind, currency) -> (debits/credits posted, debits/credits
    pending) of every account."""
    return {
        (a.owner_type, a.owner_id, a.kind, a.currency): (
            a.debits_posted,
            a.credits_posted,
            a.debits_pending,
            a.credits_pending,
        )
        for a in LedgerAccount.objects.all()
    }


def credit_balances(ex: Example, sums=None) -> list[int]:
    sums = account_sums() if sums is None else sums
    out = []
    for user in ex.credit_users:
        dp, cp, dpe, cpe = sums.get(("user", str(user.pk), "credits", "CREDIT"), (0, 0, 0, 0))
        assert dpe == cpe == 0, "credits are never pending"
        out.append(cp - dp)
    return out

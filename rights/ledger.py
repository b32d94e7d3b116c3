"""Ledger writes: accounts, transfers, pending resolution, reversals (docs/rights.md "Ledger").

Every write goes through `transfers_apply()`, which
- returns the original transfer for an idempotency key seen before when every field matches
  and raises 422 `idempotency_mismatch` when one differs;
- locks every account it touches with SELECT ... FOR UPDATE in ascending id order, whatever
  order the transfers name them in, so two concurrent postings over the same accounts queue
  instead of deadlocking. That needs one posting per transaction, after its other locks: a
  second posting would lock its accounts after the first one's, out of id order (a caller
  with several postings passes all their transfers at once; docs/rights.md "Locks");
- checks overdrafts and pending state under those locks, inserts the transfers and moves the
  cached sums of each account in the same transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from django.db import IntegrityError, connection, transaction

from config.core.errors import ApiError, Conflict

from .models import AccountKind, LedgerAccount, OwnerType, RevenueEvent, Transfer, TransferType


class IdempotencyMismatch(ApiError):
    status_code = 422
    default_code = "idempotency_mismatch"
    default_detail = "This idempotency id was already used with different fields."


class InsufficientFunds(Conflict):
    default_code = "insufficient_funds"
    default_detail = "The account does not hold enough to cover this."


AccountKey = tuple[str, str, str, str]  # (owner_type, owner_id, kind, currency)


def accounts_for(keys: Sequence[AccountKey]) -> dict[AccountKey, LedgerAccount]:
    """The accounts for `keys`, each created on first use, in at most three queries. Safe
    under concurrency: the insert ignores a conflict on the unique (owner, kind, currency)
    and the rows are read back."""
    wanted = set(keys)

    def read() -> dict[AccountKey, LedgerAccount]:
        rows = LedgerAccount.objects.filter(
            currency__in={k[3] for k in wanted}, owner_id__in={k[1] for k in wanted}
        )
        found = {(a.owner_type, a.owner_id, a.kind, a.currency): a for a in rows}
        return {k: a for k, a in found.items() if k in wanted}

    found = read()
    missing = wanted - set(found)
    if missing:
        LedgerAccount.objects.bulk_create(
            [
                LedgerAccount(
                    owner_type=t,
                    owner_id=i,
                    kind=k,
                    currency=c,
                    # People's and holders' accounts never go below zero; clearing may.
                    no_overdraft=t in (OwnerType.USER, OwnerType.HOLDER),
                )
                for t, i, k, c in sorted(missing)
            ],
            ignore_conflicts=True,
        )
        found = read()
    return found


def account_for(*, owner_type: str, owner_id: str = "", kind: str, currency: str) -> LedgerAccount:
    """The account, created on first use (see accounts_for)."""
    key = (str(owner_type), owner_id, str(kind), currency)
    return accounts_for([key])[key]


def clearing_account(name: str, currency: str) -> LedgerAccount:
    return account_for(
        owner_type=OwnerType.CLEARING, owner_id=name, kind=AccountKind.CLEARING, currency=currency
    )


@dataclass(frozen=True)
class TransferSpec:
    key: str
    debit: LedgerAccount
    credit: LedgerAccount
    amount_micros: int
    currency: str
    kind: str
    type: str = TransferType.POSTED
    role: str = ""
    pending: Transfer | None = None
    reverses: Transfer | None = None
    event: RevenueEvent | None = None

    def matches(self, row: Transfer) -> bool:
        return (
            row.type == self.type
            and row.debit_account_id == self.debit.pk
            and row.credit_account_id == self.credit.pk
            and row.amount_micros == self.amount_micros
            and row.currency == self.currency
            and row.kind == self.kind
            and row.role == self.role
            and row.pending_id == (self.pending.pk if self.pending else None)
            and row.reverses_id == (self.reverses.pk if self.reverses else None)
            and row.event_id == (self.event.pk if self.event else None)
        )


def _existing(specs: Sequence[TransferSpec]) -> list[Transfer] | None:
    """The stored transfers when every key was seen (and matches), None when none was;
    raises when some match and some don't or fields differ."""
    rows = {t.key: t for t in Transfer.objects.filter(key__in=[s.key for s in specs])}
    if not rows:
        return None
    if len(rows) != len(specs) or not all(s.matches(rows[s.key]) for s in specs):
        raise IdempotencyMismatch()
    return [rows[s.key] for s in specs]


def _check(spec: TransferSpec) -> None:
    if spec.amount_micros <= 0:
        raise ValueError("a transfer moves a positive amount")
    if spec.debit.pk == spec.credit.pk:
        raise ValueError("a transfer needs two different accounts")
    if not (spec.debit.currency == spec.credit.currency == spec.currency):
        raise ValueError("a transfer stays within one currency")
    resolving = spec.type in (TransferType.POST_PENDING, TransferType.VOID_PENDING)
    if resolving != (spec.pending is not None):
        raise ValueError("post/void transfers, and only they, name a pending transfer")


def transfers_apply(specs: Sequence[TransferSpec], *, fresh: bool = False) -> list[Transfer]:
    """Applies `specs` all or nothing and returns their rows (the originals on a replay).
    `fresh`: the caller knows no key was used before (derived from a row it just inserted),
    which saves the replay lookup.

    Raises IdempotencyMismatch (422), InsufficientFunds (409) or Conflict
    (`already_resolved`, 409) for a pending transfer that was posted or voided already.
    """
    for spec in specs:
        _check(spec)
    if not specs:
        return []
    if fresh:
        # No replay to look for and nothing to recover from here: the caller's transaction
        # (which inserted the row the keys derive from) rolls back as a whole on any error.
        if not transaction.get_connection().in_atomic_block:
            raise RuntimeError("fresh transfers are applied inside the caller's transaction")
        return _apply_locked(specs)
    found = _existing(specs)
    if found is not None:
        return found
    try:
        with transaction.atomic():
            return _apply_locked(specs, recheck=True)
    except IntegrityError as exc:
        # A concurrent request with the same key committed first (the unique index made us
        # wait for it): answer as a replay, or refuse if its fields differ.
        found = _existing(specs)
        if found is not None:
            return found
        # The unique pending/reverses index: the other side resolved it first.
        if specs[0].pending is not None or specs[0].reverses is not None:
            raise Conflict("This transfer was already resolved.", code="already_resolved") from exc
        raise


UPDATE_SUMS_SQL = (
    "UPDATE rights_ledgeraccount a SET debits_posted = a.debits_posted + v.dp,"
    " credits_posted = a.credits_posted + v.cp,"
    " debits_pending = a.debits_pending + v.dpe,"
    " credits_pending = a.credits_pending + v.cpe"
    " FROM (VALUES {values}) AS v(id, dp, cp, dpe, cpe) WHERE a.id = v.id"
)


def _apply_locked(specs: Sequence[TransferSpec], *, recheck: bool = False) -> list[Transfer]:
    ids = sorted({s.debit.pk for s in specs} | {s.credit.pk for s in specs})
    # One statement, ascending id: the same order for every transaction, so no lock cycle.
    accounts = {
        a.pk: a for a in LedgerAccount.objects.select_for_update().filter(pk__in=ids).order_by("pk")
    }
    if recheck:
        # A retry racing its original: the original may have committed while we waited for
        # the locks. Answer as its replay, before the balance (which it spent) is checked.
        found = _existing(specs)
        if found is not None:
            return found
    delta = {pk: {"dp": 0, "cp": 0, "dpe": 0, "cpe": 0} for pk in ids}
    for spec in specs:
        d, c = delta[spec.debit.pk], delta[spec.credit.pk]
        n = spec.amount_micros
        if spec.type == TransferType.POSTED:
            d["dp"] += n
            c["cp"] += n
        elif spec.type == TransferType.PENDING:
            d["dpe"] += n
            c["cpe"] += n
        else:
            pending = spec.pending
            assert pending is not None
            if pending.type != TransferType.PENDING:
                raise ValueError("only a pending transfer can be posted or voided")
            if (
                pending.debit_account_id != spec.debit.pk
                or pending.credit_account_id != spec.credit.pk
                or pending.amount_micros != n
            ):
                raise ValueError("a post/void repeats the pending transfer's accounts and amount")
            if Transfer.objects.filter(pending=pending).exists():
                raise Conflict("This transfer was already resolved.", code="already_resolved")
            d["dpe"] -= n
            c["cpe"] -= n
            if spec.type == TransferType.POST_PENDING:
                d["dp"] += n
                c["cp"] += n
    for pk, change in delta.items():
        account = accounts[pk]
        if account.no_overdraft:
            debits = account.debits_posted + change["dp"] + account.debits_pending + change["dpe"]
            if debits > account.credits_posted + change["cp"] and change["dp"] + change["dpe"] > 0:
                raise InsufficientFunds()
    rows = Transfer.objects.bulk_create(
        [
            Transfer(
                key=s.key,
                type=s.type,
                debit_account=s.debit,
                credit_account=s.credit,
                amount_micros=s.amount_micros,
                currency=s.currency,
                kind=s.kind,
                role=s.role,
                pending=s.pending,
                reverses=s.reverses,
                event=s.event,
            )
            for s in specs
        ]
    )
    changed = [
        (pk, c["dp"], c["cp"], c["dpe"], c["cpe"]) for pk, c in delta.items() if any(c.values())
    ]
    if changed:
        # One statement for every account (the rows are locked already).
        values = ", ".join(
            ["(%s::bigint, %s::bigint, %s::bigint, %s::bigint, %s::bigint)"] * len(changed)
        )
        # Only placeholders are formatted into the statement; every value is a parameter.
        sql = UPDATE_SUMS_SQL.format(values=values)
        with connection.cursor() as cursor:
            cursor.execute(sql, [x for row in changed for x in row])
    return rows


def transfer_resolve(*, pending: Transfer, post: bool, key: str | None = None) -> Transfer:
    """Posts (`post=True`) or voids a pending transfer, once. The default key is derived from
    the pending transfer, so a retry of the same resolution is a replay."""
    resolution = TransferType.POST_PENDING if post else TransferType.VOID_PENDING
    spec = TransferSpec(
        key=key or f"{pending.key}:{'post' if post else 'void'}",
        debit=pending.debit_account,
        credit=pending.credit_account,
        amount_micros=pending.amount_micros,
        currency=pending.currency,
        kind=pending.kind,
        type=resolution,
        role=pending.role,
        pending=pending,
        event=pending.event,
    )
    found = _existing([spec]) if Transfer.objects.filter(key=spec.key).exists() else None
    if found is None:
        other = Transfer.objects.filter(pending=pending).first()
        if other is not None:
            raise Conflict(
                f"This pending transfer was already {other.type.split('_')[0]}ed.",
                code="already_resolved",
            )
    return transfers_apply([spec])[0]


def transfer_reverse(*, transfer: Transfer, key: str | None = None) -> Transfer:
    """The correction of a posted transfer: the same amount back, once. Pending transfers are
    voided instead; a reversal is itself reversible (by a new posted transfer)."""
    if transfer.type not in (TransferType.POSTED, TransferType.POST_PENDING):
        raise Conflict("Only posted transfers can be reversed.", code="not_reversible")
    spec = TransferSpec(
        key=key or f"{transfer.key}:reverse",
        debit=transfer.credit_account,
        credit=transfer.debit_account,
        amount_micros=transfer.amount_micros,
        currency=transfer.currency,
        kind="reversal",
        role=transfer.role,
        reverses=transfer,
        event=transfer.event,
    )
    return transfers_apply([spec])[0]

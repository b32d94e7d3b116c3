"""Concurrent postings on real threads, each with its own connection: opposite transfers over
the same two accounts never deadlock (locks in account order), and racing spends never
overdraw an account."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from rights.checks import ledger_problems
from rights.ledger import InsufficientFunds, TransferSpec, account_for, transfers_apply
from rights.models import LedgerAccount, OwnerType

pytestmark = pytest.mark.django_db(transaction=True)


def user_account(name: str) -> LedgerAccount:
    return account_for(owner_type=OwnerType.USER, owner_id=name, kind="earnings", currency="USD")


def fund(account: LedgerAccount, amount: int) -> None:
    source = account_for(owner_type=OwnerType.CLEARING, owner_id="revenue", kind="clearing",
                         currency="USD")  # fmt: skip
    transfers_apply([TransferSpec(f"fund-{account.pk}", source, account, amount, "USD", "test")])


def worker(fn, errors: list[BaseException]) -> threading.Thread:
    """A thread running `fn` on a connection of its own, closed after; what it raises goes
    into `errors`."""

    def wrap():
        try:
            fn()
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    return threading.Thread(target=wrap)


def run(workers) -> list[BaseException]:
    errors: list[BaseException] = []
    threads = [worker(w, errors) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


def test_opposite_transfers_over_two_accounts_never_deadlock():
    a, b = user_account("a"), user_account("b")
    fund(a, 1_000)
    fund(b, 1_000)

    def mover(src, dst, tag):
        def go():
            for i in range(60):
                # Two transfers per posting, naming the accounts in both orders.
                transfers_apply(
                    [
                        TransferSpec(f"{tag}-{i}-1", src, dst, 3, "USD", "test"),
                        TransferSpec(f"{tag}-{i}-2", dst, src, 1, "USD", "test"),
                    ]
                )

        return go

    errors = run([mover(a, b, "ab"), mover(b, a, "ba"), mover(a, b, "ab2"), mover(b, a, "ba2")])
    assert errors == []
    a.refresh_from_db()
    b.refresh_from_db()
    assert a.available_micros + b.available_micros == 2_000
    assert a.available_micros == b.available_micros == 1_000  # symmetric moves cancel out
    assert ledger_problems() == []


def test_racing_spends_never_overdraw():
    rich, sink = user_account("rich"), user_account("sink")
    fund(rich, 1_000)
    wins, refusals = [], []
    lock = threading.Lock()

    def spender(n):
        def go():
            for i in range(10):
                try:
                    transfers_apply([TransferSpec(f"s{n}-{i}", rich, sink, 70, "USD", "test")])
                    with lock:
                        wins.append(1)
                except InsufficientFunds:
                    with lock:
                        refusals.append(1)

        return go

    assert run([spender(n) for n in range(4)]) == []
    rich.refresh_from_db()
    assert len(wins) == 1_000 // 70 and len(wins) + len(refusals) == 40
    assert rich.available_micros == 1_000 - 70 * len(wins) >= 0
    assert ledger_problems() == []

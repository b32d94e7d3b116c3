"""The ledger (rights.ledger): immutability in the database, idempotency, pending transfers
resolved once, overdrafts refused, reversals, and ledger_check."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import IntegrityError, InternalError, connection, transaction

from config.core.errors import Conflict
from rights import services
from rights.checks import ledger_problems
from rights.ledger import (
    IdempotencyMismatch,
    InsufficientFunds,
    TransferSpec,
    account_for,
    clearing_account,
    transfer_resolve,
    transfer_reverse,
    transfers_apply,
)
from rights.models import LedgerAccount, OwnerType, Transfer, TransferType

pytestmark = pytest.mark.django_db


def accounts():
    src = clearing_account("revenue", "USD")
    dst = account_for(owner_type=OwnerType.USER, owner_id="u1", kind="earnings", currency="USD")
    return src, dst


def spec(key, src, dst, amount=100, **kw):
    return TransferSpec(
        key=key, debit=src, credit=dst, amount_micros=amount, currency="USD", kind="test", **kw
    )


def snapshot():
    return (
        list(Transfer.objects.order_by("id").values()),
        list(LedgerAccount.objects.order_by("id").values()),
    )


def test_update_and_delete_of_a_transfer_are_refused_by_the_database():
    src, dst = accounts()
    (t,) = transfers_apply([spec("k1", src, dst)])
    before = snapshot()
    for sql in (
        "UPDATE rights_transfer SET amount_micros = 1 WHERE id = %s",
        "UPDATE rights_transfer SET kind = 'x' WHERE id = %s",
        "DELETE FROM rights_transfer WHERE id = %s",
    ):
        with (
            pytest.raises(IntegrityError, match="insert-only"),
            transaction.atomic(),
            connection.cursor() as cursor,
        ):
            cursor.execute(sql, [t.pk])
    with pytest.raises(IntegrityError), transaction.atomic():
        Transfer.objects.filter(pk=t.pk).delete()
    assert snapshot() == before


def test_same_key_same_fields_is_the_original_and_other_fields_are_refused():
    src, dst = accounts()
    (first,) = transfers_apply([spec("k1", src, dst)])
    (again,) = transfers_apply([spec("k1", src, dst)])
    assert again.pk == first.pk
    before = snapshot()
    with pytest.raises(IdempotencyMismatch) as exc:
        transfers_apply([spec("k1", src, dst, amount=101)])
    assert exc.value.status_code == 422 and exc.value.code == "idempotency_mismatch"
    assert snapshot() == before
    dst.refresh_from_db()
    assert dst.credits_posted == 100


def test_pending_is_posted_or_voided_exactly_once():
    src, dst = accounts()
    (p1, p2) = transfers_apply(
        [spec("p1", src, dst, type=TransferType.PENDING), spec("p2", src, dst, 50, type="pending")]
    )
    dst.refresh_from_db()
    assert (dst.credits_pending, dst.credits_posted, dst.available_micros) == (150, 0, 0)
    posted = transfer_resolve(pending=p1, post=True)
    assert transfer_resolve(pending=p1, post=True).pk == posted.pk  # a retry replays
    before = snapshot()
    with pytest.raises(Conflict) as exc:
        transfer_resolve(pending=p1, post=False)
    assert exc.value.code == "already_resolved"
    assert snapshot() == before
    transfer_resolve(pending=p2, post=False)
    with pytest.raises(Conflict):
        transfer_resolve(pending=p2, post=True)
    dst.refresh_from_db()
    assert (dst.credits_pending, dst.credits_posted) == (0, 100)
    assert ledger_problems() == []


def test_overdraft_is_refused_by_the_service_and_by_the_database(make_user):
    alice = make_user(username="alice")
    before = snapshot()
    with pytest.raises(InsufficientFunds) as exc:
        services.credit_spend(user=alice, key="gen-1")
    assert exc.value.status_code == 409 and exc.value.code == "insufficient_funds"
    assert Transfer.objects.count() == len(before[0])
    account = services.credits_account(user=alice)
    with pytest.raises(IntegrityError), transaction.atomic():
        LedgerAccount.objects.filter(pk=account.pk).update(debits_posted=1)


def test_credits_spent_and_refunded_exactly_once(make_user):
    alice = make_user(username="alice")
    services.credits_grant(user=alice, credits=2, key="purchase-1")
    services.credits_grant(user=alice, credits=2, key="purchase-1")  # replay: granted once
    spend = services.credit_spend(user=alice, key="gen-1")
    assert services.credit_spend(user=alice, key="gen-1").pk == spend.pk
    from rights.selectors import credits_balance

    assert credits_balance(user=alice) == 1
    refund = services.credit_refund(spend=spend)
    assert services.credit_refund(spend=spend).pk == refund.pk
    assert credits_balance(user=alice) == 2
    with pytest.raises(Conflict):
        transfer_reverse(transfer=spend, key="another-key")
    assert credits_balance(user=alice) == 2
    assert ledger_problems() == []


def test_ledger_check_passes_and_fails_on_a_cached_balance_that_drifted(capsys):
    src, dst = accounts()
    transfers_apply([spec("k1", src, dst), spec("k2", dst, src, 40)])
    call_command("ledger_check")
    assert "matches" in capsys.readouterr().out
    LedgerAccount.objects.filter(pk=dst.pk).update(credits_posted=101)
    with pytest.raises(CommandError):
        call_command("ledger_check")
    err = capsys.readouterr().err
    assert f"account {dst.pk} (USD): cached" in err and "[40, 100, 0, 0]" in err


def test_transfer_shape_is_checked():
    src, dst = accounts()
    eur = account_for(owner_type=OwnerType.USER, owner_id="u1", kind="earnings", currency="EUR")
    for bad in (spec("z", src, dst, 0), spec("z", src, src), spec("z", src, eur)):
        with pytest.raises(ValueError):
            transfers_apply([bad])
    assert not Transfer.objects.exists()
    with (
        pytest.raises((IntegrityError, InternalError)),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(
            "INSERT INTO rights_transfer (key, public_id, type, debit_account_id,"
            " credit_account_id, amount_micros, currency, kind, role, created_at)"
            " VALUES ('raw', gen_random_uuid(), 'posted', %s, %s, -5, 'USD', 'x', '', now())",
            [src.pk, dst.pk],
        )

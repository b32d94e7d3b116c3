"""The lock cycle the ledger property test once hit (docs/rights.md "Ledger", "Locks"), replayed
step by step on two threads with their own connections.

A decision on a disputed claim settles every event the dispute held. Settled one posting at a
time, it locked the accounts of the first event (the revenue clearing account, the creator),
then those of the second (the holder's account too), so its locks were not in account order
across the two steps. The holder's account is older than the clearing account (it was opened
by a licence fee before any revenue in that currency), so a recording on another video of the
same holder locks the holder first and then waits for the clearing account:

    decision:  clearing, creator (event 1)  ...  holder (event 2): waits for the recording
    recording: holder  ...  clearing: waits for the decision

The recording here runs inside its caller's transaction, so nothing retries it: before the fix
PostgreSQL aborted it (40P01). Now a decision locks every account of all its settlements in
one statement, and both finish with exact balances.
"""

from __future__ import annotations

import threading
import time
import uuid

import pytest
from django.db import connection, transaction

from rights.catalogue import AssetMatch
from rights.checks import ledger_problems
from rights.claims import claim_transition, claims_record
from rights.ledger import account_for
from rights.models import (
    AccountKind,
    Claim,
    ClaimStatus,
    DisputeHold,
    IPAsset,
    LedgerAccount,
    OwnerType,
    RevenueEvent,
    Transfer,
)
from rights.services import revenue_event_record
from tests.rights.test_ledger_concurrency import worker

pytestmark = pytest.mark.django_db(transaction=True)
AMOUNT = 10_000_000  # platform 2,000,000; net 8,000,000: Moth Lady 15 % = 1,200,000
WAIT = 10  # seconds any step may take before the test gives up


def earnings(owner_type: str, owner_id: str) -> LedgerAccount:
    return LedgerAccount.objects.get(
        owner_type=owner_type, owner_id=owner_id, kind=AccountKind.EARNINGS, currency="USD"
    )


def waiting_on_a_lock(pid: int) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", [pid])
        row = cursor.fetchone()
    return row is not None and row[0] == "Lock"


def test_a_decision_settling_two_events_and_a_recording_never_deadlock(
    studio, make_user, make_post, monkeypatch
):
    holder = str(studio["holder_id"])
    asset = IPAsset.objects.get(pk=studio["moth"]["id"])
    # A licence fee paid in USD opened the holder's account before any revenue in USD.
    holder_account = account_for(
        owner_type=OwnerType.HOLDER, owner_id=holder, kind=AccountKind.EARNINGS, currency="USD"
    )
    carl, dave = make_user(username="carl"), make_user(username="dave")
    mine, theirs = make_post(carl), make_post(dave)
    claims = {}
    for post, owner in ((mine, carl), (theirs, dave)):
        (claims[owner.username],) = claims_record(
            video_id=post.video_id,
            owner=owner,
            matches=[AssetMatch(asset, "alias", "Moth Lady", "prompt")],
        )
    claim_transition(claim=claims["carl"], to=ClaimStatus.DISPUTED, actor=carl, reason="mine")

    # Two events the dispute holds, settled in id order: 1 micro (all of it the creator's),
    # then a whole one (platform, holder, creator).
    ids = iter(sorted([uuid.uuid4(), uuid.uuid4()]))
    create = RevenueEvent.objects.create
    monkeypatch.setattr(
        RevenueEvent.objects, "create", lambda **fields: create(id=next(ids), **fields)
    )
    small, whole = (
        revenue_event_record(
            source="ads", key=key, post_id=mine.pk, amount_micros=amount, currency="USD"
        )
        for key, amount in (("small", 1), ("whole", AMOUNT))
    )
    monkeypatch.undo()
    assert small.event.pk < whole.event.pk
    assert [(t.role, t.amount_micros) for t in small.transfers] == [("creator", 1)]
    assert {t.role for t in whole.transfers} == {"platform", "ip", "creator"}
    clearing = LedgerAccount.objects.get(owner_type=OwnerType.CLEARING, owner_id="revenue")
    assert holder_account.pk < clearing.pk

    locked_accounts, go = threading.Event(), threading.Event()
    recorder_pid: list[int] = []
    errors: list[BaseException] = []
    recorded = []

    def pause_after_the_first_account_lock(execute, sql, params, many, context):
        result = execute(sql, params, many, context)
        if (
            not locked_accounts.is_set()
            and 'FROM "rights_ledgeraccount"' in sql
            and "FOR UPDATE" in sql
        ):
            locked_accounts.set()
            go.wait(WAIT)
        return result

    def decide():
        with connection.execute_wrapper(pause_after_the_first_account_lock):
            claim_transition(claim=claims["carl"], to=ClaimStatus.UPHELD, actor=studio["ana"])

    def record():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            recorder_pid.append(cursor.fetchone()[0])
        # Inside the caller's transaction: a deadlock's victim raises instead of running again.
        with transaction.atomic():
            recorded.append(
                revenue_event_record(
                    source="ads",
                    key="theirs",
                    post_id=theirs.pk,
                    amount_micros=AMOUNT,
                    currency="USD",
                )  # fmt: skip
            )

    decider, recorder = worker(decide, errors), worker(record, errors)
    decider.start()
    assert locked_accounts.wait(WAIT)
    # The decision holds its first account locks: the recording runs until it waits for one.
    recorder.start()
    deadline = time.monotonic() + WAIT
    while not (recorder_pid and waiting_on_a_lock(recorder_pid[0])):
        assert recorder.is_alive() and time.monotonic() < deadline, errors
        time.sleep(0.01)
    go.set()
    decider.join(WAIT * 2)
    recorder.join(WAIT * 2)
    assert errors == []

    # Both finished: the held events settled (posted as they were split), the new one posted.
    assert Claim.objects.get(pk=claims["carl"].pk).status == ClaimStatus.UPHELD
    assert not DisputeHold.objects.filter(settled_at__isnull=True).exists()
    (theirs_recorded,) = recorded
    assert not theirs_recorded.replayed
    assert sorted((t.role, t.amount_micros, t.type) for t in theirs_recorded.transfers) == [
        ("creator", 6_800_000, "posted"),
        ("ip", 1_200_000, "posted"),
        ("platform", 2_000_000, "posted"),
    ]
    for event in (small.event, whole.event):
        pending = Transfer.objects.filter(event=event, type="pending").count()
        assert Transfer.objects.filter(event=event, type="post_pending").count() == pending > 0
    # carl: 1 + 6,800,000; dave: 6,800,000; the holder 1,200,000 twice; the platform twice.
    for owner_type, owner_id, available in (
        (OwnerType.USER, str(carl.pk), 6_800_001),
        (OwnerType.USER, str(dave.pk), 6_800_000),
        (OwnerType.HOLDER, holder, 2_400_000),
        (OwnerType.PLATFORM, "", 4_000_000),
    ):
        account = earnings(owner_type, owner_id)
        assert (account.available_micros, account.pending_micros) == (available, 0), owner_type
    clearing.refresh_from_db()
    assert clearing.debits_posted - clearing.credits_posted == 2 * AMOUNT + 1
    assert ledger_problems() == []

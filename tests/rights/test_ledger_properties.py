"""Property test of the revenue ledger against real PostgreSQL (issue #29, "What it must show").

50 examples x 200 operations = 10,000 random revenue-event operations: new events (held or
not, amounts from 1 micro to a million units, three currencies, six posts on a remix chain),
retries with the same id, the same id with other fields, releases and voids of held revenue.
The last quarter of every example runs on four threads at once, each with its own database
connection, so retries race their originals and postings contend for the same accounts.

After every example: debits equal credits per currency, every cached balance equals the sum
of its transfers, every event's parts add up to its amount and equal the split the engine
computes for it, each id recorded one event whatever raced, no transfer written before
changed (a checksum), and UPDATE/DELETE of a transfer are refused by the database.
"""

from __future__ import annotations

import threading
import uuid
from collections import defaultdict
from dataclasses import dataclass, field

import pytest
from django.db import IntegrityError, connection, transaction
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from cameos.models import Audience, Cameo
from config.core.errors import Conflict
from rights.checks import ledger_problems
from rights.ledger import IdempotencyMismatch
from rights.models import RevenueEvent, Transfer, TransferType
from rights.services import (
    revenue_contributors,
    revenue_event_record,
    revenue_event_resolve,
    split_policy,
)
from rights.split import split_plan

pytestmark = pytest.mark.django_db(transaction=True)

EXAMPLES = 50
OPS = 200
THREADS = 4
CURRENCIES = ("USD", "EUR", "JPY")


@pytest.fixture
def posts(make_user, make_post, active_cameo):
    """A chain root <- r1 <- r2 <- r3 <- r4 (deeper than the ancestor cap; r4's author also
    wrote the root) with a monetised and an unmonetised cameo, and a lone post."""
    a, b, c, d, m, n = (make_user(username=x) for x in ("ann", "ben", "cat", "dan", "mia", "ned"))
    paid = active_cameo(m, audience=Audience.EVERYONE)
    unpaid = active_cameo(n, audience=Audience.EVERYONE)
    Cameo.objects.filter(pk=paid.pk).update(monetization_enabled=True)
    root = make_post(a, cameos=[paid, unpaid])
    chain = [root]
    for author in (b, c, d, a):
        chain.append(make_post(author, remix_of=chain[-1], cameos=[paid]))
    lone = make_post(b)
    return [p.pk for p in (*chain, lone)]


@dataclass(frozen=True)
class Attempt:
    op: str  # record | resolve
    key: str
    fields: tuple  # (post index, amount, currency, held) for record; (release,) for resolve


@dataclass
class Outcome:
    attempt: Attempt
    result: str  # ok | mismatch | conflict | missing
    event_id: uuid.UUID | None = None
    transfer_ids: list[int] = field(default_factory=list)


operation = st.tuples(
    st.sampled_from(["new"] * 5 + ["retry"] * 3 + ["mismatch", "resolve"]),
    st.integers(0, 5),  # post
    st.one_of(st.integers(1, 20), st.integers(1, 10**12)),  # amount
    st.sampled_from(CURRENCIES),
    st.booleans(),  # held
    st.integers(0, 10**6),  # which earlier event a retry/mismatch/resolve names
)


def plan(ops, prefix: str) -> list[Attempt]:
    attempts: list[Attempt] = []
    news: list[Attempt] = []
    for kind, post, amount, currency, held, pick in ops:
        if kind == "new" or not news:
            attempt = Attempt("record", f"{prefix}-{len(attempts)}", (post, amount, currency, held))
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


def execute(attempt: Attempt, post_ids) -> Outcome:
    if attempt.op == "record":
        post, amount, currency, held = attempt.fields
        try:
            recorded = revenue_event_record(
                source="prop",
                key=attempt.key,
                post_id=post_ids[post],
                amount_micros=amount,
                currency=currency,
                held=held,
            )
        except IdempotencyMismatch:
            return Outcome(attempt, "mismatch")
        assert sum(t.amount_micros for t in recorded.transfers) == amount
        return Outcome(attempt, "ok", recorded.event.pk, [t.pk for t in recorded.transfers])
    event = RevenueEvent.objects.filter(source="prop", key=attempt.key).first()
    if event is None or not event.held:
        return Outcome(attempt, "missing")
    try:
        revenue_event_resolve(event=event, release=attempt.fields[0])
    except Conflict as exc:
        assert exc.code == "already_resolved"
        return Outcome(attempt, "conflict", event.pk)
    return Outcome(attempt, "ok", event.pk)


def run_threads(attempts, post_ids) -> list[Outcome]:
    outcomes: list[Outcome] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def work(share):
        try:
            for attempt in share:
                outcome = execute(attempt, post_ids)
                with lock:
                    outcomes.append(outcome)
        except BaseException as exc:  # surfaced below, with the thread's traceback
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=work, args=(attempts[i::THREADS],)) for i in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return outcomes


CHECKSUM_SQL = """
SELECT count(*), COALESCE(md5(string_agg(concat_ws('|', id, public_id, key, type,
    debit_account_id, credit_account_id, amount_micros, currency, kind, role, pending_id,
    reverses_id, event_id, created_at), ',' ORDER BY id)), '')
FROM rights_transfer WHERE id <= %s
"""


def checksum(upto: int):
    with connection.cursor() as cursor:
        cursor.execute(CHECKSUM_SQL, [upto])
        return cursor.fetchone()


def check_outcomes(outcomes: list[Outcome], post_ids, contributors) -> None:
    by_key: dict[str, list[Outcome]] = defaultdict(list)
    for outcome in outcomes:
        by_key[outcome.attempt.key].append(outcome)
    events = {e.key: e for e in RevenueEvent.objects.filter(key__in=list(by_key))}
    transfers: dict[uuid.UUID, list[Transfer]] = defaultdict(list)
    for t in Transfer.objects.filter(event__in=list(events.values())).order_by("id"):
        transfers[t.event_id].append(t)
    policy = split_policy()
    for key, found in by_key.items():
        records = [o for o in found if o.attempt.op == "record"]
        event = events.get(key)
        if not records:
            assert event is None or all(o.result == "missing" for o in found) or event.held
            continue
        # One event per id, whatever raced: its fields are those of one attempt, every attempt
        # with those fields got it back (same transfers), every other was refused.
        assert event is not None, key
        stored = (post_ids.index(event.post_id), event.amount_micros, event.currency, event.held)
        assert stored in {o.attempt.fields for o in records}
        splits = [t for t in transfers[event.pk] if t.type in ("posted", "pending")]
        for o in records:
            if o.attempt.fields == stored:
                assert o.result == "ok" and o.event_id == event.pk
                assert o.transfer_ids == [t.pk for t in splits]
            else:
                assert o.result == "mismatch"
        # The split is exactly what the engine computes for this event.
        parts = split_plan(
            amount_micros=event.amount_micros,
            policy=policy,
            contributors=contributors[event.post_id],
        )
        assert [(t.role, t.amount_micros) for t in splits] == [
            (p.role, p.amount_micros) for p in parts if p.amount_micros
        ]
        wanted = TransferType.PENDING if event.held else TransferType.POSTED
        assert {t.type for t in splits} <= {wanted}
        # Held revenue is resolved all together, one way, by the calls that said so.
        resolutions = {t.type for t in transfers[event.pk]} - {"posted", "pending"}
        assert len(resolutions) <= 1
        for o in found:
            if o.attempt.op == "resolve" and o.result in ("ok", "conflict"):
                chosen = "post_pending" if o.attempt.fields[0] else "void_pending"
                assert resolutions, key
                assert (chosen in resolutions) == (o.result == "ok")


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    # Shrinking 200-operation runs against a database takes minutes; a failure is reported
    # as generated (with its seed), which is enough to replay it.
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ops=st.lists(operation, min_size=OPS, max_size=OPS))
def test_random_revenue_events_keep_the_ledger_sound(posts, ops):
    contributors = {pk: revenue_contributors(post_id=pk) for pk in posts}
    last = Transfer.objects.order_by("-id").values_list("id", flat=True).first() or 0
    before = checksum(last)

    attempts = plan(ops, uuid.uuid4().hex[:12])
    cut = OPS * 3 // 4
    outcomes = [execute(a, posts) for a in attempts[:cut]]
    outcomes += run_threads(attempts[cut:], posts)

    assert ledger_problems() == []
    check_outcomes(outcomes, posts, contributors)
    assert checksum(last) == before  # nothing written before this example changed
    some = Transfer.objects.order_by("?").values_list("id", flat=True).first()
    for sql in (
        "UPDATE rights_transfer SET amount_micros = 1 WHERE id = %s",
        "DELETE FROM rights_transfer WHERE id = %s",
    ):
        with (
            pytest.raises(IntegrityError, match="insert-only"),
            transaction.atomic(),
            connection.cursor() as cursor,
        ):
            cursor.execute(sql, [some])

"""Revenue over HTTP (API.md "Rights and revenue"): a revenue event on a remix chain pays
everyone to the micro; refusals change nothing; earnings, credits, the trial balance."""

from __future__ import annotations

import uuid

import pytest
from rest_framework.test import APIClient

from cameos.models import Audience, Cameo
from rights.checks import ledger_problems
from rights.models import LedgerAccount, RevenueEvent, Transfer
from tests.conftest import client_for
from tests.helpers import assert_error

pytestmark = pytest.mark.django_db

SERVICE_TOKEN = "s" * 40


@pytest.fixture
def chain(make_user, make_post, active_cameo):
    """A cameo post by gina, remixed by paul, remixed again by carl; mia's cameo (monetised)
    is in all three."""
    users = {n: make_user(username=n) for n in ("gina", "paul", "carl", "mia")}
    cameo = active_cameo(users["mia"], audience=Audience.EVERYONE)
    Cameo.objects.filter(pk=cameo.pk).update(monetization_enabled=True)
    root = make_post(users["gina"], cameos=[cameo])
    parent = make_post(users["paul"], remix_of=root, cameos=[cameo])
    deepest = make_post(users["carl"], remix_of=parent, cameos=[cameo])
    assert (deepest.depth, deepest.remix_of_id, parent.remix_of_id) == (2, parent.pk, root.pk)
    return users, deepest


@pytest.fixture
def staff(make_user):
    return client_for(make_user(username="staffer", is_staff=True))


def event(post, **over):
    return {
        "source": "ads",
        "post_id": str(post.pk),
        "amount_micros": 10_000_000,
        "currency": "USD",
        **over,
    }


def ledger_state():
    return (
        list(Transfer.objects.order_by("id").values_list("id", flat=True)),
        list(LedgerAccount.objects.order_by("id").values()),
        RevenueEvent.objects.count(),
    )


def test_revenue_event_on_the_deepest_remix_pays_everyone_to_the_micro(chain, staff):
    users, deepest = chain
    response = staff.post(
        "/api/v1/revenue/events",
        event(deepest),
        format="json",
        HTTP_IDEMPOTENCY_KEY="ads-2026-12-06-1",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["amount_micros"] == 10_000_000 and body["post_id"] == str(deepest.pk)
    paid = {
        (s["role"], s["party"]["type"], s["party"]["id"]): s["amount_micros"]
        for s in body["splits"]
    }
    uid = {n: str(u.pk) for n, u in users.items()}
    assert paid == {
        ("platform", "platform", None): 2_000_000,
        ("cameo", "user", uid["mia"]): 800_000,
        ("ancestor", "user", uid["paul"]): 1_152_000,
        ("ancestor", "user", uid["gina"]): 288_000,
        ("creator", "user", uid["carl"]): 5_760_000,
    }
    assert all(s["status"] == "posted" for s in body["splits"])
    assert sum(paid.values()) == 10_000_000

    for name, expected in (
        ("mia", 800_000),
        ("paul", 1_152_000),
        ("gina", 288_000),
        ("carl", 5_760_000),
    ):
        earnings = client_for(users[name]).get("/api/v1/me/earnings")
        assert earnings.status_code == 200
        data = earnings.json()
        assert data["balances"] == [
            {"currency": "USD", "available_micros": expected, "pending_micros": 0}
        ]
        (line,) = data["lines"]["results"]
        assert line["amount_micros"] == expected and line["event_id"] == body["id"]
        assert line["post_id"] == str(deepest.pk) and data["lines"]["next"] is None

    trial = staff.get("/api/v1/revenue/trial-balance").json()
    usd = trial["currencies"]["USD"]
    assert usd["debits_micros"] == usd["credits_micros"] == 10_000_000
    assert ledger_problems() == []


def test_replays_and_refusals_change_nothing(chain, staff, settings):
    users, deepest = chain
    first = staff.post(
        "/api/v1/revenue/events", event(deepest), format="json", HTTP_IDEMPOTENCY_KEY="e1"
    )
    assert first.status_code == 201
    before = ledger_state()

    again = staff.post(
        "/api/v1/revenue/events", event(deepest), format="json", HTTP_IDEMPOTENCY_KEY="e1"
    )
    assert again.status_code == 201 and again.json() == first.json()
    other = staff.post(
        "/api/v1/revenue/events",
        event(deepest, amount_micros=5),
        format="json",
        HTTP_IDEMPOTENCY_KEY="e1",
    )
    assert_error(other, 422, "idempotency_mismatch")

    carl = client_for(users["carl"])
    assert_error(
        carl.post(
            "/api/v1/revenue/events", event(deepest), format="json", HTTP_IDEMPOTENCY_KEY="e2"
        ),
        403,
        "permission_denied",
    )
    assert_error(
        APIClient().post(
            "/api/v1/revenue/events", event(deepest), format="json", HTTP_IDEMPOTENCY_KEY="e2"
        ),
        401,
        "not_authenticated",
    )
    assert_error(
        staff.post("/api/v1/revenue/events", event(deepest), format="json"),
        400,
        "invalid",
        "Idempotency-Key",
    )
    assert_error(
        staff.post(
            "/api/v1/revenue/events",
            event(deepest, post_id=str(uuid.uuid4())),
            format="json",
            HTTP_IDEMPOTENCY_KEY="e3",
        ),
        404,
        "not_found",
        "post_id",
    )
    for bad, field in (
        ({"amount_micros": 0}, "amount_micros"),
        ({"amount_micros": "5"}, "amount_micros"),
        ({"amount_micros": 10**16}, "amount_micros"),
        ({"currency": "usd"}, "currency"),
        ({"post_id": 5}, "post_id"),
        ({"hold": "yes"}, "hold"),
        ({"extra": 1}, "extra"),
    ):
        response = staff.post(
            "/api/v1/revenue/events",
            event(deepest, **bad),
            format="json",
            HTTP_IDEMPOTENCY_KEY=f"bad-{field}",
        )
        assert_error(response, 400, "invalid", field)
    assert ledger_state() == before

    # The service token: the same event id from the service is the same ledger event.
    settings.RIFF_SERVICE_TOKEN = SERVICE_TOKEN
    service = APIClient()
    service.credentials(HTTP_AUTHORIZATION=f"Bearer {SERVICE_TOKEN}")
    replay = service.post(
        "/api/v1/revenue/events", event(deepest), format="json", HTTP_IDEMPOTENCY_KEY="e1"
    )
    assert replay.status_code == 201 and replay.json() == first.json()
    assert replay["Idempotent-Replayed"] == "true"
    assert_error(
        service.post(
            "/api/v1/revenue/events",
            event(deepest, currency="EUR"),
            format="json",
            HTTP_IDEMPOTENCY_KEY="e1",
        ),
        422,
        "idempotency_mismatch",
    )
    wrong = APIClient()
    wrong.credentials(HTTP_AUTHORIZATION=f"Bearer {'t' * 40}")
    assert_error(
        wrong.post(
            "/api/v1/revenue/events", event(deepest), format="json", HTTP_IDEMPOTENCY_KEY="e4"
        ),
        401,
        "not_authenticated",
    )
    assert ledger_state() == before

    created = service.post(
        "/api/v1/revenue/events", event(deepest), format="json", HTTP_IDEMPOTENCY_KEY="e5"
    )
    assert created.status_code == 201 and created.json()["id"] != first.json()["id"]
    assert ledger_problems() == []


def test_held_revenue_is_pending_until_released_or_voided(chain, staff):
    from rights.services import revenue_event_resolve

    users, deepest = chain
    body = staff.post(
        "/api/v1/revenue/events",
        event(deepest, hold=True),
        format="json",
        HTTP_IDEMPOTENCY_KEY="held-1",
    ).json()
    assert {s["status"] for s in body["splits"]} == {"pending"}
    carl = client_for(users["carl"])
    assert carl.get("/api/v1/me/earnings").json()["balances"] == [
        {"currency": "USD", "available_micros": 0, "pending_micros": 5_760_000}
    ]
    held = RevenueEvent.objects.get(pk=body["id"])
    revenue_event_resolve(event=held, release=True)
    revenue_event_resolve(event=held, release=True)  # replay
    assert carl.get("/api/v1/me/earnings").json()["balances"] == [
        {"currency": "USD", "available_micros": 5_760_000, "pending_micros": 0}
    ]
    replay = staff.post(
        "/api/v1/revenue/events",
        event(deepest, hold=True),
        format="json",
        HTTP_IDEMPOTENCY_KEY="held-1",
    )
    assert {s["status"] for s in replay.json()["splits"]} == {"pending"}  # the first answer

    voided = staff.post(
        "/api/v1/revenue/events",
        event(deepest, hold=True),
        format="json",
        HTTP_IDEMPOTENCY_KEY="held-2",
    ).json()
    revenue_event_resolve(event=RevenueEvent.objects.get(pk=voided["id"]), release=False)
    lines = carl.get("/api/v1/me/earnings?limit=2").json()["lines"]
    assert [line["type"] for line in lines["results"]] == ["void_pending", "pending"]
    assert lines["next"]
    assert carl.get("/api/v1/me/earnings").json()["balances"][0]["available_micros"] == 5_760_000
    assert ledger_problems() == []


def test_credits_grant_and_balance(make_user, staff, settings):
    alice = make_user(username="alice")
    me = client_for(alice)
    assert me.get("/api/v1/me/credits").json() == {"balance": 0}
    r = staff.post(
        "/api/v1/credits/grants",
        {"username": "alice", "credits": 5},
        format="json",
        HTTP_IDEMPOTENCY_KEY="buy-1",
    )
    assert r.status_code == 201 and r.json()["balance"] == 5
    again = staff.post(
        "/api/v1/credits/grants",
        {"username": "alice", "credits": 5},
        format="json",
        HTTP_IDEMPOTENCY_KEY="buy-1",
    )
    assert again.status_code == 201 and again.json() == r.json()
    assert me.get("/api/v1/me/credits").json() == {"balance": 5}
    before = ledger_state()
    assert_error(
        me.post("/api/v1/credits/grants", {"username": "alice", "credits": 5}, format="json"),
        403,
        "permission_denied",
    )
    assert_error(
        staff.post("/api/v1/credits/grants", {"username": "nobody", "credits": 5}, format="json"),
        404,
        "not_found",
        "username",
    )
    assert_error(
        staff.post("/api/v1/credits/grants", {"username": "alice", "credits": 0}, format="json"),
        400,
        "invalid",
        "credits",
    )
    assert ledger_state() == before
    settings.RIFF_SERVICE_TOKEN = SERVICE_TOKEN
    service = APIClient()
    service.credentials(HTTP_AUTHORIZATION=f"Bearer {SERVICE_TOKEN}")
    for _ in range(2):
        r = service.post(
            "/api/v1/credits/grants",
            {"username": "alice", "credits": 3},
            format="json",
            HTTP_IDEMPOTENCY_KEY="svc-buy-1",
        )
        assert r.status_code == 201 and r.json()["balance"] == 8
    assert_error(me.get("/api/v1/revenue/trial-balance"), 403, "permission_denied")
    assert staff.get("/api/v1/revenue/trial-balance").json()["currencies"]["CREDIT"] == {
        "debits_micros": 8,
        "credits_micros": 8,
        "pending_debits_micros": 0,
        "pending_credits_micros": 0,
    }


def test_contributor_hooks_cap_and_skip(make_user, make_post, active_cameo, settings):
    from feed.models import Post, PostState
    from rights.services import revenue_contributors

    names = ("r0", "r1", "r2", "r3", "r4", "mon", "off")
    users = {n: make_user(username=n) for n in names}
    paid = active_cameo(users["mon"], audience=Audience.EVERYONE)
    unpaid = active_cameo(users["off"], audience=Audience.EVERYONE)
    Cameo.objects.filter(pk=paid.pk).update(monetization_enabled=True)
    chain = [make_post(users["r0"], cameos=[paid, unpaid])]
    for n in ("r1", "r2", "r3", "r4"):
        chain.append(make_post(users[n], remix_of=chain[-1], cameos=[paid]))

    def roles(post):
        found = revenue_contributors(post_id=post.pk)
        return sorted((c.role, c.depth, c.party.id) for c in found)

    uid = {n: str(u.pk) for n, u in users.items()}
    assert roles(chain[0]) == [("cameo", 0, uid["mon"]), ("creator", 0, uid["r0"])]
    # Depth 4: only the nearest three ancestors (RIFF_REVENUE_ANCESTOR_MAX_DEPTH).
    assert roles(chain[4]) == [
        ("ancestor", 1, uid["r3"]),
        ("ancestor", 2, uid["r2"]),
        ("ancestor", 3, uid["r1"]),
        ("cameo", 0, uid["mon"]),
        ("creator", 0, uid["r4"]),
    ]
    # A taken-down parent and an inactive grand-grandparent are skipped; the root moves up.
    Post.objects.filter(pk=chain[3].pk).update(state=PostState.REMOVED)
    type(users["r1"]).objects.filter(pk=users["r1"].pk).update(is_active=False)
    Cameo.objects.filter(pk=paid.pk).update(monetization_enabled=False)
    assert roles(chain[4]) == [
        ("ancestor", 1, uid["r2"]),
        ("ancestor", 2, uid["r0"]),
        ("creator", 0, uid["r4"]),
    ]
    settings.RIFF_REVENUE_ANCESTOR_MAX_DEPTH = 0
    assert roles(chain[4]) == [("creator", 0, uid["r4"])]
    assert revenue_contributors(post_id=uuid.uuid4()) == []


def test_payouts_reserve_then_pay_or_give_back(make_user, make_post, staff):
    from config.core.errors import Conflict
    from rights.models import Payout
    from rights.payouts import payout_transition
    from rights.services import revenue_event_record

    carl = make_user(username="carl")
    post = make_post(carl)
    revenue_event_record(
        source="ads", key="p1", post_id=post.pk, amount_micros=10_000_000, currency="USD"
    )
    me = client_for(carl)

    def balance():
        return me.get("/api/v1/me/earnings").json()["balances"][0]["available_micros"]

    assert balance() == 8_000_000  # no cameo, no ancestor: all of the net
    first = me.post(
        "/api/v1/me/payouts",
        {"amount_micros": 3_000_000, "currency": "USD"},
        format="json",
        HTTP_IDEMPOTENCY_KEY="po-1",
    )
    assert first.status_code == 201 and first.json()["status"] == "requested"
    assert balance() == 5_000_000
    before = ledger_state()
    assert_error(
        me.post(
            "/api/v1/me/payouts", {"amount_micros": 5_000_001, "currency": "USD"}, format="json"
        ),
        409,
        "insufficient_funds",
    )
    assert_error(
        me.post("/api/v1/me/payouts", {"amount_micros": 1, "currency": "EUR"}, format="json"),
        409,
        "insufficient_funds",
    )
    assert_error(
        me.post("/api/v1/me/payouts", {"amount_micros": 0, "currency": "USD"}, format="json"),
        400,
        "invalid",
        "amount_micros",
    )
    assert ledger_state() == before and Payout.objects.count() == 1

    paid = Payout.objects.get(pk=first.json()["id"])
    payout_transition(payout=paid, to="approved")
    payout_transition(payout=paid, to="paid")
    with pytest.raises(Conflict) as exc:
        payout_transition(payout=paid, to="failed")
    assert exc.value.code == "invalid_transition"
    assert balance() == 5_000_000

    second = me.post(
        "/api/v1/me/payouts", {"amount_micros": 5_000_000, "currency": "USD"}, format="json"
    ).json()
    assert balance() == 0
    payout_transition(payout=Payout.objects.get(pk=second["id"]), to="failed")
    assert balance() == 5_000_000  # failed: the money is back
    listed = me.get("/api/v1/me/payouts").json()
    assert [p["status"] for p in listed["results"]] == ["failed", "paid"]
    assert client_for(make_user(username="eve")).get("/api/v1/me/payouts").json()["results"] == []
    trial = staff.get("/api/v1/revenue/trial-balance").json()["currencies"]["USD"]
    assert trial["debits_micros"] == trial["credits_micros"]
    assert ledger_problems() == []


def _illegal_payout_moves():
    import itertools

    from rights.payouts import PAYOUT_STATES

    return [
        (a, b)
        for a, b in itertools.product(PAYOUT_STATES.states, repeat=2)
        if not PAYOUT_STATES.can(a, b)
    ]


@pytest.mark.parametrize(("current", "to"), _illegal_payout_moves())
def test_payout_refuses_every_transition_its_table_does_not_list(make_user, current, to):
    from config.core.errors import Conflict
    from rights.models import Payout, PayoutStatus
    from rights.payouts import PAYOUT_STATES, payout_transition

    assert set(PAYOUT_STATES.states) == set(PayoutStatus.values)
    payout = Payout.objects.create(
        user=make_user(username="pat"), amount_micros=1, currency="USD", status=current
    )
    before = ledger_state()
    with pytest.raises(Conflict) as exc:
        payout_transition(payout=payout, to=to)
    assert exc.value.code == "invalid_transition"
    payout.refresh_from_db()
    assert payout.status == current and ledger_state() == before


def test_admin_shows_the_ledger_read_only_and_moves_payouts(make_user, make_post):
    from django.test import Client

    from rights.models import Payout
    from rights.payouts import payout_request
    from rights.services import revenue_event_record

    carl = make_user(username="carl")
    revenue_event_record(
        source="ads", key="a1", post_id=make_post(carl).pk, amount_micros=1_000, currency="USD"
    )
    payout = payout_request(user=carl, amount_micros=500, currency="USD")
    admin = make_user(username="boss", is_staff=True, is_superuser=True)
    browser = Client()
    browser.force_login(admin)
    for model in ("ledgeraccount", "transfer", "revenueevent", "payout"):
        assert browser.get(f"/admin/rights/{model}/").status_code == 200
    transfer = Transfer.objects.first()
    page = browser.get(f"/admin/rights/transfer/{transfer.pk}/change/")
    assert page.status_code == 200 and b'name="amount_micros"' not in page.content
    assert browser.post(f"/admin/rights/transfer/{transfer.pk}/delete/").status_code == 403
    response = browser.post(
        "/admin/rights/payout/",
        {"action": "mark_failed", "_selected_action": [str(payout.pk)]},
    )
    assert response.status_code == 302
    payout.refresh_from_db()
    assert payout.status == "failed"
    assert ledger_problems() == []
    assert Payout.objects.count() == 1


def test_deleting_an_account_keeps_its_ledger(make_user, make_post, staff):
    from accounts.services import user_delete
    from rights.models import Payout
    from rights.payouts import payout_request
    from rights.services import revenue_event_record

    carl = make_user(username="carl")
    post = make_post(carl)
    staff.post("/api/v1/revenue/events", event(post), format="json", HTTP_IDEMPOTENCY_KEY="d1")
    revenue_event_record(
        source="ads", key="d2", post_id=post.pk, amount_micros=1_000, currency="USD"
    )
    payout = payout_request(user=carl, amount_micros=500, currency="USD")
    before = list(Transfer.objects.order_by("id").values())
    user_delete(user=carl)
    user_delete(user=staff.user)
    # Transfers, accounts and events stay (the books must balance); links to people go.
    assert list(Transfer.objects.order_by("id").values()) == before
    assert RevenueEvent.objects.count() == 2
    assert RevenueEvent.objects.filter(created_by__isnull=False).count() == 0
    assert Payout.objects.get(pk=payout.pk).user_id is None
    assert ledger_problems() == []

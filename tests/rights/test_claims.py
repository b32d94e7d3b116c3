"""Claims (API.md "Rights and revenue"): who sees and decides them, what a dispute does to
revenue (held, then paid to whoever wins, to the micro), licence fees, holder statements."""

from __future__ import annotations

import csv
import io
import uuid

import pytest

from accounts.services import user_delete
from config.core.errors import Conflict
from rights.catalogue import AssetMatch
from rights.checks import ledger_problems
from rights.claims import claims_record
from rights.models import Claim, DisputeHold, IPAsset, RevenueEvent, Transfer
from rights.services import revenue_event_record, revenue_event_resolve
from tests.conftest import client_for
from tests.helpers import assert_error

pytestmark = pytest.mark.django_db
AMOUNT = 10_000_000  # platform 20 % = 2,000,000; net 8,000,000; Moth Lady 15 % of net = 1,200,000


@pytest.fixture
def claimed(studio, make_user, make_post):
    """carl's post uses Moth Lady (licensed, 15 %): one active claim on its video."""
    carl = make_user(username="carl")
    post = make_post(carl, prompt="Moth Lady bakes bread")
    asset = IPAsset.objects.get(pk=studio["moth"]["id"])
    (claim,) = claims_record(
        video_id=post.video_id,
        owner=carl,
        matches=[AssetMatch(asset, "alias", "Moth Lady", "prompt")],
    )
    return {**studio, "carl": carl, "post": post, "claim": claim}


def record(post, key: str, **over):
    return revenue_event_record(
        source="ads", key=key, post_id=post.pk, amount_micros=AMOUNT, currency="USD", **over
    )


def balances(party_client) -> dict:
    body = party_client.get("/api/v1/me/earnings").json()
    return {b["currency"]: (b["available_micros"], b["pending_micros"]) for b in body["balances"]}


def holder_totals(client, holder_id) -> dict:
    body = client.get(f"/api/v1/rights/holders/{holder_id}/statement").json()
    return {t["currency"]: (t["closing_micros"], t["pending_micros"]) for t in body["totals"]}


def parts(event) -> dict:
    """(role, party type) -> amount of the event's parts that still count (not voided)."""
    rows = Transfer.objects.filter(event=event, kind="split", type__in=["posted", "pending"])
    out: dict = {}
    for t in rows.select_related("credit_account"):
        if Transfer.objects.filter(pending=t, type="void_pending").exists():
            continue
        key = (t.role, t.credit_account.owner_type)
        out[key] = out.get(key, 0) + t.amount_micros
    return out


def second_claim(claimed, make_user):
    """A second licensed asset (10 %), of another holder (member: dora), claimed on the same
    video: (dora, the claim)."""
    staff = client_for(make_user(username="boss", is_staff=True))
    dora = make_user(username="dora")
    other = staff.post(
        "/api/v1/rights/holders", {"name": "Dune Co", "members": ["dora"]}, format="json"
    ).json()
    terms = {"name": "Sand Wyrm", "policy": "licensed", "share_bps": 1000}
    sand = client_for(dora).post(
        "/api/v1/rights/assets", {"holder_id": other["id"], **terms}, format="json"
    )
    (claim,) = claims_record(
        video_id=claimed["post"].video_id,
        owner=claimed["carl"],
        matches=[
            AssetMatch(
                IPAsset.objects.get(pk=sand.json()["id"]), "semantic", "Sand Wyrm", "prompt", 0.7
            )
        ],
    )
    return dora, claim


def test_a_licensed_claim_pays_its_holder_its_share(claimed):
    event = record(claimed["post"], "e1").event
    assert parts(event) == {
        ("platform", "platform"): 2_000_000,
        ("ip", "holder"): 1_200_000,
        ("creator", "user"): 6_800_000,
    }
    ana = client_for(claimed["ana"])
    assert holder_totals(ana, claimed["holder_id"]) == {"USD": (1_200_000, 0)}
    assert ledger_problems() == []


def test_who_sees_the_claims_of_a_video(claimed, api, make_user):
    video = claimed["post"].video_id
    for who in ("carl", "ana", "ben"):
        body = client_for(claimed[who]).get(f"/api/v1/videos/{video}/claims").json()
        (claim,) = body["results"]
        assert claim["asset"]["name"] == "Moth Lady" and claim["status"] == "active"
        assert (claim["policy"], claim["policy_version"], claim["share_bps"]) == (
            "licensed",
            1,
            1500,
        )
        assert claim["via"] == "alias" and claim["video_id"] == str(video)
    # A stranger: the same 404 as for a video that does not exist.
    assert_error(api.get(f"/api/v1/videos/{video}/claims"), 404, "not_found")
    assert_error(api.get(f"/api/v1/videos/{uuid.uuid4()}/claims"), 404, "not_found")
    # Members of another holder see nothing of it.
    outsider = make_user(username="outsider")
    assert_error(client_for(outsider).get(f"/api/v1/videos/{video}/claims"), 404, "not_found")


def test_only_the_owner_disputes_only_members_decide(claimed, api):
    claim = claimed["claim"]
    carl, ana = client_for(claimed["carl"]), client_for(claimed["ana"])
    url = f"/api/v1/claims/{claim.pk}"
    assert_error(api.post(f"{url}/dispute", {"reason": "mine"}, format="json"), 404, "not_found")
    assert_error(
        ana.post(f"{url}/dispute", {"reason": "x"}, format="json"), 403, "permission_denied"
    )
    assert_error(carl.post(f"{url}/uphold"), 403, "permission_denied")
    assert_error(ana.post(f"{url}/uphold"), 409, "invalid_transition")  # not disputed
    assert_error(
        carl.post(f"{url}/dispute", {"reason": "   "}, format="json"), 400, "invalid", "reason"
    )
    assert_error(carl.post(f"{url}/dispute", {}, format="json"), 400, "invalid", "reason")
    claim.refresh_from_db()
    assert claim.status == "active" and claim.dispute_reason == ""
    disputed = carl.post(f"{url}/dispute", {"reason": "It is my own moth."}, format="json")
    assert disputed.status_code == 200 and disputed.json()["status"] == "disputed"
    assert disputed.json()["dispute_reason"] == "It is my own moth."
    assert_error(
        carl.post(f"{url}/dispute", {"reason": "again"}, format="json"), 409, "invalid_transition"
    )
    upheld = client_for(claimed["ben"]).post(f"{url}/uphold")
    assert upheld.status_code == 200 and upheld.json()["status"] == "upheld"
    assert_error(ana.post(f"{url}/release"), 409, "invalid_transition")


def test_disputed_revenue_is_held_then_paid_to_the_holder_when_upheld(claimed):
    carl, ana = client_for(claimed["carl"]), client_for(claimed["ana"])
    claim = claimed["claim"]
    carl.post(f"/api/v1/claims/{claim.pk}/dispute", {"reason": "mine"}, format="json")
    held = record(claimed["post"], "during").event
    assert DisputeHold.objects.filter(event=held, claim=claim, settled_at=None).count() == 1
    assert balances(carl) == {"USD": (0, 6_800_000)}
    assert holder_totals(ana, claimed["holder_id"]) == {"USD": (0, 1_200_000)}
    # The client may not release it around the dispute.
    with pytest.raises(Conflict) as refused:
        revenue_event_resolve(event=held, release=True)
    assert refused.value.get_codes() == "disputed"
    ana.post(f"/api/v1/claims/{claim.pk}/uphold")
    assert balances(carl) == {"USD": (6_800_000, 0)}
    assert holder_totals(ana, claimed["holder_id"]) == {"USD": (1_200_000, 0)}
    # Posted as split: the same parts, no void.
    assert not Transfer.objects.filter(event=held, type="void_pending").exists()
    assert DisputeHold.objects.get(event=held).settled_at is not None
    assert ledger_problems() == []


def test_disputed_revenue_goes_to_the_rest_when_released(claimed):
    carl, ana = client_for(claimed["carl"]), client_for(claimed["ana"])
    claim = claimed["claim"]
    before = record(claimed["post"], "before").event  # split with the claim, posted
    carl.post(f"/api/v1/claims/{claim.pk}/dispute", {"reason": "mine"}, format="json")
    held = record(claimed["post"], "during").event
    ana.post(f"/api/v1/claims/{claim.pk}/release")
    assert parts(held) == {("platform", "platform"): 2_000_000, ("creator", "user"): 8_000_000}
    assert parts(before)[("ip", "holder")] == 1_200_000  # what was paid before stays paid
    assert balances(carl) == {"USD": (6_800_000 + 8_000_000, 0)}
    assert holder_totals(ana, claimed["holder_id"]) == {"USD": (1_200_000, 0)}
    # Released claims earn nothing afterwards.
    after = record(claimed["post"], "after").event
    assert ("ip", "holder") not in parts(after)
    # Replaying the held event answers with its history: voided parts and the settled ones.
    replay = record(claimed["post"], "during")
    assert replay.replayed and replay.event.pk == held.pk
    assert ledger_problems() == []


def test_a_holder_may_waive_an_active_claim(claimed):
    ana = client_for(claimed["ana"])
    released = ana.post(f"/api/v1/claims/{claimed['claim'].pk}/release")
    assert released.status_code == 200 and released.json()["status"] == "released"
    assert ("ip", "holder") not in parts(record(claimed["post"], "e").event)


def test_two_disputed_claims_settle_once_both_are_decided(claimed, studio, make_user):
    dora, second = second_claim(claimed, make_user)
    carl = client_for(claimed["carl"])
    for claim in (claimed["claim"], second):
        carl.post(f"/api/v1/claims/{claim.pk}/dispute", {"reason": "no"}, format="json")
    held = record(claimed["post"], "both").event
    assert DisputeHold.objects.filter(event=held).count() == 2
    client_for(claimed["ana"]).post(f"/api/v1/claims/{claimed['claim'].pk}/uphold")
    assert balances(carl) == {"USD": (0, 6_000_000)}  # still held: one dispute stands
    client_for(dora).post(f"/api/v1/claims/{second.pk}/release")
    # Moth Lady keeps 15 % of the net; Sand Wyrm's 10 % goes back to the creator.
    assert parts(held) == {
        ("platform", "platform"): 2_000_000,
        ("ip", "holder"): 1_200_000,
        ("creator", "user"): 6_800_000,
    }
    assert balances(carl) == {"USD": (6_800_000, 0)}
    assert ledger_problems() == []


def test_a_licence_fee_is_paid_once_per_claim(studio, make_user, make_post):
    ana = client_for(studio["ana"])
    ana.patch(
        f"/api/v1/rights/assets/{studio['moth']['id']}", {"fee_micros": 250_000}, format="json"
    )
    carl = make_user(username="carl")
    post = make_post(carl)
    asset = IPAsset.objects.get(pk=studio["moth"]["id"])
    match = AssetMatch(asset, "alias", "Moth Lady", "prompt")
    (claim,) = claims_record(video_id=post.video_id, owner=carl, matches=[match])
    claims_record(video_id=post.video_id, owner=carl, matches=[match])  # a replay
    assert Claim.objects.filter(video_id=post.video_id).count() == 1
    assert claim.policy_version == 2 and claim.share_bps == 1500
    fees = Transfer.objects.filter(kind="licence_fee")
    assert [(t.key, t.amount_micros) for t in fees] == [(f"licence_fee:{claim.pk}", 250_000)]
    assert holder_totals(ana, studio["holder_id"]) == {"USD": (250_000, 0)}


def test_statements_json_and_csv(claimed, api):
    ana = client_for(claimed["ana"])
    record(claimed["post"], "s1")
    record(claimed["post"], "s2")
    holder = claimed["holder_id"]
    body = ana.get(f"/api/v1/rights/holders/{holder}/statement").json()
    assert body["holder"]["name"] == "Orbit Studios" and body["truncated"] is False
    assert body["totals"] == [
        {
            "currency": "USD",
            "opening_micros": 0,
            "posted_in_micros": 2_400_000,
            "posted_out_micros": 0,
            "closing_micros": 2_400_000,
            "pending_micros": 0,
        }
    ]
    assert [(line["role"], line["amount_micros"]) for line in body["lines"]] == [
        ("ip", 1_200_000)
    ] * 2
    # A period after everything: the balance opens where it closed.
    later = ana.get(
        f"/api/v1/rights/holders/{holder}/statement?from=2099-01-01&to=2099-02-01"
    ).json()
    assert later["totals"][0]["opening_micros"] == 2_400_000 and later["lines"] == []
    response = ana.get(f"/api/v1/rights/holders/{holder}/statement?format=csv")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows[0][:6] == ["created_at", "id", "kind", "role", "type", "amount_micros"]
    assert [r[5] for r in rows[1:3]] == ["1200000", "1200000"]
    assert rows[-1][:3] == ["total", "USD", "0"] and rows[-1][5] == "2400000"
    assert_error(api.get(f"/api/v1/rights/holders/{holder}/statement"), 404, "not_found")
    for query in (
        "from=yesterday",
        "from=2026-02-30",
        "from=2026-01-01&to=2025-01-01",
        "from=2020-01-01&to=2026-01-01",
        "format=xml",
    ):
        response = ana.get(f"/api/v1/rights/holders/{holder}/statement?{query}")
        assert response.status_code in (400, 404), query
        assert response.json()["error"]["code"] in ("invalid", "not_found"), query


def test_account_deletion_keeps_claims_and_holds(claimed):
    carl = client_for(claimed["carl"])
    carl.post(f"/api/v1/claims/{claimed['claim'].pk}/dispute", {"reason": "mine"}, format="json")
    held = record(claimed["post"], "held").event
    user_delete(user=claimed["carl"])
    claim = Claim.objects.get(pk=claimed["claim"].pk)
    # The claim and the hold outlive the account; the holder still decides, and the
    # creator's part (now an account with no owner) is settled like any other.
    assert claim.status == "disputed" and claim.owner_id is None
    client_for(claimed["ana"]).post(f"/api/v1/claims/{claim.pk}/uphold")
    assert DisputeHold.objects.get(event=held).settled_at is not None
    assert RevenueEvent.objects.filter(pk=held.pk).exists()
    assert ledger_problems() == []


def test_revenue_held_by_one_claim_settles_when_a_later_dispute_ends_last(claimed, make_user):
    """Found by the property test: A is disputed, revenue is held by A alone, then B is
    disputed; A is decided first (B still disputed: wait), then B. The hold must settle then."""
    dora, b = second_claim(claimed, make_user)
    carl = client_for(claimed["carl"])
    a = claimed["claim"]
    carl.post(f"/api/v1/claims/{a.pk}/dispute", {"reason": "no"}, format="json")
    held = record(claimed["post"], "held-by-a").event
    assert list(DisputeHold.objects.filter(event=held).values_list("claim_id", flat=True)) == [a.pk]
    carl.post(f"/api/v1/claims/{b.pk}/dispute", {"reason": "no"}, format="json")
    client_for(claimed["ana"]).post(f"/api/v1/claims/{a.pk}/uphold")
    assert DisputeHold.objects.get(event=held).settled_at is None  # B is still disputed
    client_for(dora).post(f"/api/v1/claims/{b.pk}/release")
    assert DisputeHold.objects.get(event=held).settled_at is not None
    assert ("ip", "holder") in parts(held) and parts(held)[("ip", "holder")] == 1_200_000
    assert ledger_problems() == []


def test_takedowns_and_revocations_keep_claims_and_their_terms(claimed, active_cameo):
    from cameos.services import cameo_revoke
    from feed.services import post_restore, post_takedown

    post, claim = claimed["post"], claimed["claim"]
    post_takedown(post=post, reason="under review")
    # The claim stays, with its terms; revenue reported for the post meanwhile still splits.
    assert Claim.objects.get(pk=claim.pk).status == "active"
    assert parts(record(post, "during-takedown").event)[("ip", "holder")] == 1_200_000
    post_restore(post=post)
    # A character cameo that portrayed the asset is revoked: the link stays as a record, and
    # so does every claim made through it.
    character = active_cameo(claimed["ana"], kind="character", handle="moth.suit")
    client_for(claimed["ana"]).patch(
        f"/api/v1/rights/assets/{claimed['moth']['id']}",
        {"cameo_id": str(character.pk)},
        format="json",
    )
    cameo_revoke(cameo=character, actor=claimed["ana"])
    assert str(IPAsset.objects.get(pk=claimed["moth"]["id"]).cameo_id) == str(character.pk)
    assert Claim.objects.filter(pk=claim.pk, policy_version=1, share_bps=1500).exists()
    assert ledger_problems() == []

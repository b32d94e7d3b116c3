"""The rights catalogue over HTTP (API.md "Rights and revenue"): holders and members, assets
and their versions, the public catalogue, the IP check and admission refusals."""

from __future__ import annotations

import uuid

import pytest

from cameos.models import Audience, Cameo
from generation.models import Generation
from rights.models import HolderMember, IPAsset, IPAssetVersion, RightsHolder
from tests.conftest import client_for
from tests.helpers import assert_error

pytestmark = pytest.mark.django_db


def catalogue_state():
    return (
        list(RightsHolder.objects.order_by("pk").values()),
        list(HolderMember.objects.order_by("pk").values()),
        list(IPAsset.objects.order_by("pk").values("id", "version", "policy", "name")),
        IPAssetVersion.objects.count(),
    )


# --- holders ------------------------------------------------------------------------------


def test_staff_create_holders_members_see_members_strangers_do_not(studio, api, staff):
    holder = studio["holder_id"]
    body = client_for(studio["ben"]).get(f"/api/v1/rights/holders/{holder}").json()
    assert body["name"] == "Orbit Studios" and body["members"] == ["ana", "ben"]
    assert body["verified"] is True
    assert_error(api.get(f"/api/v1/rights/holders/{holder}"), 404, "not_found")
    before = catalogue_state()
    # Not staff: refused, nothing created.
    refused = api.post(
        "/api/v1/rights/holders", {"name": "Pirates", "members": ["ana"]}, format="json"
    )
    assert_error(refused, 403, "permission_denied")
    # A name a person could not tell apart from an existing one.
    taken = staff.post(
        "/api/v1/rights/holders", {"name": "  orbit   STUDIOS ", "members": ["ana"]}, format="json"
    )
    assert_error(taken, 409, "conflict", "name")
    unknown = staff.post(
        "/api/v1/rights/holders", {"name": "New", "members": ["nobody-here"]}, format="json"
    )
    assert_error(unknown, 404, "not_found", "username")
    empty = staff.post("/api/v1/rights/holders", {"name": "New", "members": []}, format="json")
    assert_error(empty, 400, "invalid", "members")
    assert catalogue_state() == before


def test_members_manage_members_but_never_remove_the_last(studio, make_user, api, user):
    holder = studio["holder_id"]
    ana = client_for(studio["ana"])
    make_user(username="cleo")
    added = ana.post(
        f"/api/v1/rights/holders/{holder}/members", {"username": "cleo"}, format="json"
    )
    assert added.status_code == 201 and added.json()["members"] == ["ana", "ben", "cleo"]
    again = ana.post(
        f"/api/v1/rights/holders/{holder}/members", {"username": "cleo"}, format="json"
    )
    assert again.status_code == 201 and again.json()["members"] == ["ana", "ben", "cleo"]
    # A stranger can neither add nor remove, and learns nothing (404).
    before = catalogue_state()
    assert_error(
        api.post(
            f"/api/v1/rights/holders/{holder}/members", {"username": user.username}, format="json"
        ),
        404,
        "not_found",
    )
    assert_error(api.delete(f"/api/v1/rights/holders/{holder}/members/ana"), 404, "not_found")
    assert catalogue_state() == before
    assert ana.delete(f"/api/v1/rights/holders/{holder}/members/ben").status_code == 204
    assert ana.delete(f"/api/v1/rights/holders/{holder}/members/cleo").status_code == 204
    before = catalogue_state()
    assert_error(ana.delete(f"/api/v1/rights/holders/{holder}/members/ana"), 409, "last_member")
    assert catalogue_state() == before
    # Ben left: he manages nothing any more.
    ben = client_for(studio["ben"])
    assert_error(ben.get(f"/api/v1/rights/holders/{holder}"), 404, "not_found")
    assert_error(
        ben.patch(f"/api/v1/rights/assets/{studio['moth']['id']}", {"share_bps": 1}, format="json"),
        403,
        "permission_denied",
    )


# --- assets -------------------------------------------------------------------------------


def test_assets_are_versioned_and_the_catalogue_is_public(studio, anon):
    moth = studio["moth"]
    assert moth["version"] == 1 and moth["share_bps"] == 1500 and moth["policy"] == "licensed"
    assert moth["holder"]["name"] == "Orbit Studios" and moth["aliases"] == ["Madame Moth"]
    ana = client_for(studio["ana"])
    patched = ana.patch(
        f"/api/v1/rights/assets/{moth['id']}",
        {"share_bps": 2500, "fee_micros": 50_000},
        format="json",
    )
    assert patched.status_code == 200, patched.content
    assert patched.json()["version"] == 2 and patched.json()["share_bps"] == 2500
    # Nothing about the terms changed: no new version.
    same = ana.patch(f"/api/v1/rights/assets/{moth['id']}", {"share_bps": 2500}, format="json")
    assert same.json()["version"] == 2
    versions = list(
        IPAssetVersion.objects.filter(asset_id=moth["id"])
        .order_by("version")
        .values_list("version", "share_bps", "fee_micros")
    )
    assert versions == [(1, 1500, 0), (2, 2500, 50_000)]
    # Public, with and without a (broken) token; ?q= finds names and aliases.
    listing = anon.get("/api/v1/rights/assets")
    assert listing.status_code == 200
    assert [a["name"] for a in listing.json()["results"]] == ["Moth Lady", "Captain Comet"]
    assert [a["name"] for a in anon.get("/api/v1/rights/assets?q=comet kid").json()["results"]] == [
        "Captain Comet"
    ]
    anon.credentials(HTTP_AUTHORIZATION="Bearer nonsense")
    assert anon.get(f"/api/v1/rights/assets/{moth['id']}").json()["version"] == 2
    paged = anon.get("/api/v1/rights/assets?limit=1")
    second = anon.get(paged.json()["next"])
    assert [a["name"] for a in second.json()["results"]] == ["Captain Comet"]
    assert_error(anon.get(f"/api/v1/rights/assets/{uuid.uuid4()}"), 404, "not_found")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"policy": "licensed"}, "share_bps"),  # licensed needs a share
        ({"policy": "licensed", "share_bps": 10_001}, "share_bps"),
        ({"policy": "blocked", "share_bps": 100}, "share_bps"),  # only licensed has one
        ({"policy": "allowed", "fee_micros": 5}, "fee_micros"),
        ({"policy": "owned"}, "policy"),
        ({"aliases": ["!!!"]}, "aliases"),  # normalises to nothing: would match everything
        ({"aliases": ["x" * 61]}, "aliases.0"),
        ({"aliases": "Comet"}, "aliases"),
        ({"name": ""}, "name"),
        ({"share_bps": "1500", "policy": "licensed"}, "share_bps"),
        ({"semantic_threshold": 1.5}, "semantic_threshold"),
        ({"cameo_id": str(uuid.uuid4())}, "cameo_id"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_bad_assets_are_refused_and_leave_nothing(studio, body, field):
    before = catalogue_state()
    data = {"holder_id": studio["holder_id"], "name": "Star Fox Kid", "policy": "blocked", **body}
    response = client_for(studio["ana"]).post("/api/v1/rights/assets", data, format="json")
    assert_error(response, 400, "invalid", field)
    assert catalogue_state() == before


def test_only_members_register_assets(studio, api, staff):
    before = catalogue_state()
    body = {"holder_id": studio["holder_id"], "name": "Fake Comet", "policy": "blocked"}
    assert_error(api.post("/api/v1/rights/assets", body, format="json"), 404, "not_found")
    # Staff see the holder but are not its members: they don't speak for it.
    assert_error(staff.post("/api/v1/rights/assets", body, format="json"), 403, "permission_denied")
    other = {"holder_id": str(uuid.uuid4()), "name": "X Man Kid", "policy": "blocked"}
    assert_error(
        client_for(studio["ana"]).post("/api/v1/rights/assets", other, format="json"),
        404,
        "not_found",
    )
    assert catalogue_state() == before


def test_a_character_cameo_can_portray_a_licensed_asset(studio, active_cameo, user):
    ana = client_for(studio["ana"])
    character = active_cameo(studio["ana"], kind="character", handle="moth.lady")
    mine = active_cameo(user, kind="character", handle="not.theirs")
    refused = ana.patch(
        f"/api/v1/rights/assets/{studio['moth']['id']}", {"cameo_id": str(mine.pk)}, format="json"
    )
    assert_error(refused, 400, "invalid", "cameo_id")
    linked = ana.patch(
        f"/api/v1/rights/assets/{studio['moth']['id']}",
        {"cameo_id": str(character.pk)},
        format="json",
    )
    assert linked.status_code == 200 and linked.json()["cameo_id"] == str(character.pk)
    # The link is not part of the terms: same version.
    assert linked.json()["version"] == 1
    taken = ana.patch(
        f"/api/v1/rights/assets/{studio['comet']['id']}",
        {"cameo_id": str(character.pk)},
        format="json",
    )
    assert_error(taken, 409, "conflict", "cameo_id")


# --- the IP check and admission -----------------------------------------------------------

OBFUSCATED = [
    "C4pt@in  Comet's big race",
    "captain-comet rides again",
    "CAPTAIN COMET",
    "Сaptain Сomet",  # Cyrillic С
    "the comet kid on a skateboard",
]


@pytest.mark.parametrize("prompt", OBFUSCATED)
def test_check_names_the_blocked_asset(studio, api, prompt, settings):
    settings.RIFF_RIGHTS_SEMANTIC = False
    response = api.get("/api/v1/rights/check", {"prompt": prompt})
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["decision"] == "blocked"
    assert [(m["asset"]["name"], m["via"], m["policy"]) for m in body["matches"]] == [
        ("Captain Comet", "alias", "blocked")
    ]


def test_check_most_restrictive_wins_and_unrelated_is_allowed(studio, api, settings):
    settings.RIFF_RIGHTS_SEMANTIC = False
    both = api.get("/api/v1/rights/check", {"prompt": "Moth Lady bakes for Captain Comet"}).json()
    assert both["decision"] == "blocked"
    assert [m["asset"]["name"] for m in both["matches"]] == ["Captain Comet", "Moth Lady"]
    moth = api.get("/api/v1/rights/check", {"prompt": "madame moth's bakery at night"}).json()
    assert moth["decision"] == "licensed"
    plain = api.get("/api/v1/rights/check", {"prompt": "a cat chasing comets"}).json()
    assert plain == {"decision": "allowed", "matches": [], "semantic": False}
    for bad in ("", "x" * 2001, "a\x00b"):
        assert_error(api.get("/api/v1/rights/check", {"prompt": bad}), 400, "invalid", "prompt")


@pytest.mark.parametrize("prompt", OBFUSCATED)
def test_a_blocked_asset_is_refused_at_admission_and_nothing_is_created(studio, api, prompt):
    response = api.post("/api/v1/generations", {"prompt": prompt}, format="json")
    error = assert_error(response, 403, "ip_blocked", "prompt")
    assert "Captain Comet" in error["fields"]["prompt"][0]
    assert "Orbit Studios" in error["message"]
    assert Generation.objects.count() == 0


def test_cameo_instructions_and_portraying_cameos_count(studio, api, user, active_cameo):
    cameo = active_cameo(user, audience=Audience.EVERYONE, handle="my.robot")
    Cameo.objects.filter(pk=cameo.pk).update(instructions="always dressed as captain comet")
    response = api.post(
        "/api/v1/generations", {"prompt": "a robot waves", "cameos": [str(cameo.pk)]}, format="json"
    )
    assert_error(response, 403, "ip_blocked", "cameos")
    # A character cameo that portrays the blocked asset is refused by using it.
    ana = client_for(studio["ana"])
    character = active_cameo(
        studio["ana"], kind="character", handle="comet.costume", audience=Audience.EVERYONE
    )
    ana.patch(
        f"/api/v1/rights/assets/{studio['comet']['id']}",
        {"cameo_id": str(character.pk)},
        format="json",
    )
    response = api.post("/api/v1/generations", {"prompt": "@comet.costume waves"}, format="json")
    assert_error(response, 403, "ip_blocked", "cameos")
    assert Generation.objects.count() == 0


def test_the_holder_may_use_its_own_blocked_asset(studio):
    ana = client_for(studio["ana"])
    response = ana.post("/api/v1/generations", {"prompt": "Captain Comet waves"}, format="json")
    assert response.status_code == 202, response.content
    check = ana.get("/api/v1/rights/check", {"prompt": "Captain Comet waves"}).json()
    assert check["decision"] == "allowed" and check["matches"] == []


def test_a_policy_change_applies_to_the_next_generation(studio, api):
    ana = client_for(studio["ana"])
    assert_error(
        api.post("/api/v1/generations", {"prompt": "captain comet"}, format="json"),
        403,
        "ip_blocked",
    )
    ana.patch(
        f"/api/v1/rights/assets/{studio['comet']['id']}", {"policy": "allowed"}, format="json"
    )
    assert (
        api.post("/api/v1/generations", {"prompt": "captain comet"}, format="json").status_code
        == 202
    )
    ana.patch(
        f"/api/v1/rights/assets/{studio['comet']['id']}",
        {"policy": "blocked", "aliases": ["Comet Captain", "Kid Comet"]},
        format="json",
    )
    assert_error(
        api.post("/api/v1/generations", {"prompt": "kid comet!"}, format="json"), 403, "ip_blocked"
    )


def test_a_remix_prompt_is_checked_too(studio, make_post, make_user, api):
    author = make_user(username="poster")
    parent = make_post(author)
    response = api.post(
        f"/api/v1/posts/{parent.pk}/remix", {"prompt": "now with Captain Comet"}, format="json"
    )
    assert_error(response, 403, "ip_blocked", "prompt")
    assert Generation.objects.filter(owner__username="poster").count() == 1
    assert Generation.objects.count() == 1


def test_admin_creates_holders_and_shows_assets_and_claims_read_only(studio, make_user):
    from django.test import Client

    admin = make_user(username="boss", is_staff=True, is_superuser=True)
    browser = Client()
    browser.force_login(admin)
    for model in ("rightsholder", "ipasset", "claim", "disputehold"):
        assert browser.get(f"/admin/rights/{model}/").status_code == 200, model
    asset = IPAsset.objects.get(pk=studio["moth"]["id"])
    page = browser.get(f"/admin/rights/ipasset/{asset.pk}/change/")
    assert page.status_code == 200 and b'name="share_bps"' not in page.content
    assert browser.post(f"/admin/rights/ipasset/{asset.pk}/delete/").status_code == 403
    # A holder added in the admin gets its name key, so the API sees the same uniqueness.
    response = browser.post(
        "/admin/rights/rightsholder/add/",
        {
            "name": "  Nova   Press ",
            "verified": "on",
            "memberships-TOTAL_FORMS": "1",
            "memberships-INITIAL_FORMS": "0",
            "memberships-0-user": str(studio["ana"].pk),
        },
    )
    assert response.status_code == 302, response.content[:2000]
    holder = RightsHolder.objects.get(name="Nova Press")
    assert holder.name_key == "nova press"
    assert list(holder.memberships.values_list("user__username", flat=True)) == ["ana"]


def test_lists_take_constant_queries(studio, anon, django_assert_max_num_queries):
    ana = client_for(studio["ana"])
    for i in range(6):
        ana.post(
            "/api/v1/rights/assets",
            {"holder_id": studio["holder_id"], "name": f"Extra Hero {i}", "policy": "allowed"},
            format="json",
        )
    with django_assert_max_num_queries(3):
        assert len(anon.get("/api/v1/rights/assets?limit=100").json()["results"]) == 8


def test_check_without_a_worker_answers_with_the_aliases_alone(studio, api, settings):
    settings.RIFF_RIGHTS_CHECK_TIMEOUT = 0.3
    body = api.get("/api/v1/rights/check", {"prompt": "the comet kid, described"}).json()
    assert body["semantic"] is False and body["decision"] == "blocked"
    assert [m["via"] for m in body["matches"]] == ["alias"]


def test_staff_do_not_change_a_holders_terms(studio, staff):
    moth = studio["moth"]["id"]
    response = staff.patch(f"/api/v1/rights/assets/{moth}", {"share_bps": 1}, format="json")
    assert_error(response, 403, "permission_denied")
    assert IPAsset.objects.get(pk=moth).share_bps == 1500

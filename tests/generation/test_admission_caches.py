"""What admission keeps between requests (compiled SQL, the moderation policy snapshot, the IP
catalogue's matcher) never outlives a change: a revoked grant, a new or edited safety rule, a
new blocked IP asset all count on the very next request. And the work per request stays what
issue #31 brought it to: one query for every named cameo, one freshness check for the policy."""

from __future__ import annotations

import uuid

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.models import Block, Follow
from cameos.consent import cameo_decisions, cameos_for_use, consent_reason
from cameos.models import Audience, Cameo, CameoGrant, CameoStatus
from generation.models import Generation
from moderation.models import ProtectedFigure, SafetyRule
from rights.catalogue import asset_create, asset_update, holder_create
from tests.helpers import assert_error

pytestmark = pytest.mark.django_db


def post(client, prompt, cameos=()):
    return client.post(
        "/api/v1/generations",
        {"prompt": prompt, "cameos": [str(c) for c in cameos]},
        format="json",
    )


def test_a_revoked_grant_or_a_block_counts_on_the_next_request(api, user, other, active_cameo):
    cameo = active_cameo(other, handle="bobs.cat")
    grant = CameoGrant.objects.create(cameo=cameo, user=user)
    assert post(api, "a cat", [cameo.pk]).status_code == 202
    grant.delete()
    assert_error(post(api, "a cat", [cameo.pk]), 403, "cameo_permission_denied", "cameos")
    CameoGrant.objects.create(cameo=cameo, user=user)
    assert post(api, "a cat", [cameo.pk]).status_code == 202
    Block.objects.create(blocker=other, blocked=user)
    assert_error(post(api, "a cat", [cameo.pk]), 403, "cameo_permission_denied")
    Block.objects.all().delete()
    Cameo.objects.filter(pk=cameo.pk).update(status=CameoStatus.REVOKED)
    assert_error(post(api, "a cat", [cameo.pk]), 403, "cameo_permission_denied")
    assert Generation.objects.count() == 2


def test_safety_rules_count_on_the_next_request_however_they_change(api):
    assert post(api, "a dragon over the sea").status_code == 202
    rule = SafetyRule.objects.create(name="no dragons", pattern="dragon", message="No dragons.")
    error = assert_error(post(api, "a dragon over the sea"), 403, "content_policy")
    assert error["message"] == "No dragons."
    # Writes that bypass the model (the admin's bulk actions, SQL) count as well.
    SafetyRule.objects.filter(pk=rule.pk).update(enabled=False)
    assert post(api, "a dragon over the sea").status_code == 202
    SafetyRule.objects.filter(pk=rule.pk).update(enabled=True, pattern="sea")
    assert_error(post(api, "a ship on the sea"), 403, "content_policy")
    assert post(api, "a dragon in the sky").status_code == 202
    SafetyRule.objects.filter(pk=rule.pk).update(kind=SafetyRule.Kind.REGEX, pattern=r"sk[yi]")
    assert_error(post(api, "a dragon in the ski"), 403, "content_policy")
    rule.delete()
    assert post(api, "a dragon in the sky").status_code == 202


def test_a_new_protected_figure_counts_on_the_next_request(api):
    assert post(api, "Odile Brand sings").status_code == 202
    ProtectedFigure.objects.create(name="Odile Brand")
    assert_error(post(api, "Odile Brand sings"), 403, "content_policy")


def test_a_new_or_newly_blocked_ip_asset_counts_on_the_next_request(api, make_user):
    ana = make_user(username="ana")
    holder = holder_create(name="Orbit Studios", members=[ana])
    assert post(api, "Captain Comet saves the day").status_code == 202
    comet = asset_create(
        holder=holder, actor=ana, data={"name": "Captain Comet", "policy": "blocked"}
    )
    assert_error(post(api, "Captain Comet saves the day"), 403, "ip_blocked")
    asset_update(asset=comet, actor=ana, data={"policy": "allowed"})
    assert post(api, "Captain Comet saves the day").status_code == 202
    asset_update(asset=comet, actor=ana, data={"policy": "blocked", "aliases": ["The Comet"]})
    assert_error(post(api, "the comet saves the day"), 403, "ip_blocked")


def test_one_query_loads_and_checks_every_named_cameo(api, user, other, active_cameo):
    things = [active_cameo(other, handle=f"thing.{i}") for i in range(3)]
    for cameo in things:
        CameoGrant.objects.create(cameo=cameo, user=user)
    cameos = [cameo.pk for cameo in things]
    assert post(api, "warm up", cameos).status_code == 202  # policy snapshot built
    with CaptureQueriesContext(connection) as queries:
        assert post(api, "three things", cameos).status_code == 202
    sql = [q["sql"] for q in queries.captured_queries]
    assert len([s for s in sql if s.lstrip().startswith("SELECT") and "cameos_cameo" in s]) == 1
    # One freshness check for the rules and the figures, however many checks read them.
    assert len([s for s in sql if "moderation_safetyrule" in s]) == 1
    assert not [s for s in sql if "moderation_protectedfigure" in s and "xmin" not in s]
    # The job row and its links in one statement batch; nothing read back for the response.
    inserts = [s for s in sql if "INSERT INTO" in s]
    assert len(inserts) == 1 and "generation_generationcameo" in inserts[0]
    assert not [s for s in sql if s.startswith("SELECT") and '"generation_generation"."id"' in s]


def test_the_freshness_stamps_ride_the_first_round_trip(api, user, other, active_cameo):
    """The policy's and the IP catalogue's stamps are read in the statement batch that locks
    the caller's row and counts the quota, not in round trips of their own; the tests above
    show that what they guard still counts on the next request."""
    cameo = active_cameo(other, handle="bobs.cat")
    CameoGrant.objects.create(cameo=cameo, user=user)
    assert post(api, "warm up", [cameo.pk]).status_code == 202
    with CaptureQueriesContext(connection) as queries:
        assert post(api, "a cat", [cameo.pk]).status_code == 202
    sql = [q["sql"] for q in queries.captured_queries]
    (first,) = [s for s in sql if "FOR UPDATE" in s]
    assert "moderation_safetyrule" in first and "moderation_protectedfigure" in first
    assert 'FROM "rights_ipasset"' in first
    assert [s for s in sql if "moderation_safetyrule" in s or "rights_ipasset" in s] == [first]


def test_the_compiled_consent_rule_answers_like_the_orm_rule(user, make_user, active_cameo):
    """cameo_decisions / cameos_for_use run SQL compiled once from consent_reason; every
    branch of the rule must come out as the ORM expression says."""
    owner = make_user(username="owner")
    blocker = make_user(username="blocker")
    mutual = make_user(username="mutual")
    Follow.objects.create(follower=user, followee=mutual)
    Follow.objects.create(follower=mutual, followee=user)
    Block.objects.create(blocker=blocker, blocked=user)
    cases = {
        "own": active_cameo(user),
        "granted": active_cameo(owner),
        "everyone": active_cameo(owner, audience=Audience.EVERYONE),
        "only_me": active_cameo(owner, audience=Audience.ONLY_ME),
        "mutual": active_cameo(mutual, audience=Audience.MUTUALS),
        "not_mutual": active_cameo(owner, audience=Audience.MUTUALS),
        "blocked": active_cameo(blocker, audience=Audience.EVERYONE),
        "inactive": active_cameo(owner, audience=Audience.EVERYONE),
    }
    CameoGrant.objects.create(cameo=cases["granted"], user=user)
    Cameo.objects.filter(pk=cases["inactive"].pk).update(status=CameoStatus.NEEDS_REVIEW)
    expected = dict(Cameo.objects.annotate(reason=consent_reason(user)).values_list("pk", "reason"))
    ids = [c.pk for c in cases.values()]
    missing = uuid.uuid4()
    decisions = cameo_decisions(user, [*ids, missing])
    assert {pk: d.reason for pk, d in decisions.items()} == {pk: expected[pk] for pk in ids}
    assert {d.reason for d in decisions.values()} == {
        "owner",
        "granted",
        "everyone",
        "only_me",
        "mutual",
        "not_in_audience",
        "blocked",
        "not_active",
    }
    loaded = cameos_for_use(user, [missing, *reversed(ids), ids[0]])
    assert set(loaded) == set(ids)
    for pk, (cameo, decision) in loaded.items():
        assert decision == decisions[pk]
        fresh = Cameo.objects.get(pk=pk)
        assert (cameo.handle, cameo.owner_id, cameo.instructions_version, cameo.kind) == (
            fresh.handle,
            fresh.owner_id,
            fresh.instructions_version,
            fresh.kind,
        )
        assert cameo.reference_frames == fresh.reference_frames  # deferred, loads on access
    for n in range(1, 4):  # one compiled statement per number of ids, each right
        some = ids[:n]
        assert {pk: d.reason for pk, d in cameo_decisions(user, some).items()} == {
            pk: expected[pk] for pk in some
        }

"""`cameo_can_use` over every audience x relationship x status, then the same through HTTP."""

import itertools

import pytest
from django.contrib.auth.models import AnonymousUser

from accounts.models import Block, Follow
from cameos.consent import cameo_can_use, usable_cameos
from cameos.models import AccessRequest, CameoGrant, CameoStatus
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

RELATIONS = [
    "owner",
    "granted",
    "mutual",
    "follower",
    "stranger",
    "blocker",
    "blocked",
    "anonymous",
]
# For an ACTIVE cameo: may this relation use it? (1 = yes)
ACTIVE = {
    #            owner granted mutual follower stranger blocker blocked anonymous
    "only_me": (1, 0, 0, 0, 0, 0, 0, 0),
    "approved": (1, 1, 0, 0, 0, 0, 0, 0),
    "mutuals": (1, 1, 1, 0, 0, 0, 0, 0),
    "everyone": (1, 1, 1, 1, 1, 0, 0, 0),
}
STATUSES = [s.value for s in CameoStatus]


@pytest.fixture
def world(make_cameo):
    owner = UserFactory(username="owner")
    viewers = {name: UserFactory(username=f"v_{name}") for name in RELATIONS[1:-1]}
    viewers["owner"] = owner
    viewers["anonymous"] = AnonymousUser()
    Follow.objects.create(follower=viewers["mutual"], followee=owner)
    Follow.objects.create(follower=owner, followee=viewers["mutual"])
    Follow.objects.create(follower=viewers["follower"], followee=owner)
    # The blocker and the blocked also hold grants and a mutual follow: a block must still win.
    for name in ("blocker", "blocked"):
        Follow.objects.create(follower=viewers[name], followee=owner)
        Follow.objects.create(follower=owner, followee=viewers[name])
    Block.objects.create(blocker=viewers["blocker"], blocked=owner)
    Block.objects.create(blocker=owner, blocked=viewers["blocked"])
    cameos = {}
    for audience, status in itertools.product(ACTIVE, STATUSES):
        cameo = make_cameo(
            owner, status=status, audience=audience, handle=f"c_{audience}_{status}"[:30]
        )
        for name in ("granted", "blocker", "blocked"):
            CameoGrant.objects.create(cameo=cameo, user=viewers[name])
        cameos[(audience, status)] = cameo
    return owner, viewers, cameos


def expected(audience: str, status: str, relation: str) -> bool:
    return status == "active" and bool(ACTIVE[audience][RELATIONS.index(relation)])


def test_cameo_can_use_matrix(world):
    _, viewers, cameos = world
    mismatches = []
    for (audience, status), cameo in cameos.items():
        for relation in RELATIONS:
            decision = cameo_can_use(viewers[relation], cameo)
            if decision.allowed != expected(audience, status, relation):
                mismatches.append((audience, status, relation, decision))
    assert mismatches == []
    assert len(cameos) * len(RELATIONS) == 192


@pytest.mark.parametrize(
    "relation,audience,status,reason",
    [
        ("anonymous", "everyone", "active", "anonymous"),
        ("owner", "only_me", "verifying", "not_active"),
        ("owner", "only_me", "active", "owner"),
        ("blocked", "everyone", "active", "blocked"),
        ("blocker", "everyone", "active", "blocked"),
        ("granted", "only_me", "active", "only_me"),
        ("granted", "approved", "active", "granted"),
        ("stranger", "everyone", "active", "everyone"),
        ("mutual", "mutuals", "active", "mutual"),
        ("follower", "mutuals", "active", "not_in_audience"),
        ("stranger", "approved", "revoked", "not_active"),
    ],
)
def test_decision_reasons(world, relation, audience, status, reason):
    _, viewers, cameos = world
    assert cameo_can_use(viewers[relation], cameos[(audience, status)]).reason == reason


def test_deactivated_owner_disables_every_cameo(world):
    owner, viewers, cameos = world
    owner.is_active = False
    owner.save()
    assert not cameo_can_use(viewers["stranger"], cameos[("everyone", "active")]).allowed


def test_usable_list_matches_the_matrix(world):
    _, viewers, cameos = world
    for relation in RELATIONS:
        got = set(usable_cameos(viewers[relation]).values_list("pk", flat=True))
        want = {c.pk for (a, s), c in cameos.items() if expected(a, s, relation)}
        assert got == want, relation


def _client(user):
    from tests.conftest import client_for

    return client_for(user)


def test_usable_list_over_http(world, anon):
    _, viewers, cameos = world
    for relation in RELATIONS:
        if relation == "anonymous":
            assert anon.get("/api/v1/cameos?scope=usable").status_code == 401
            continue
        client = _client(viewers[relation])
        ids, url = set(), "/api/v1/cameos?scope=usable&limit=7"
        while url:
            body = client.get(url).json()
            ids |= {row["id"] for row in body["results"]}
            assert all(row["can_use"] is True for row in body["results"])
            url = body["next"]
        want = {str(c.pk) for (a, s), c in cameos.items() if expected(a, s, relation)}
        assert ids == want, relation


# What POST /cameos/{id}/access-requests answers, by relation, for an ACTIVE cameo.
REQUEST_STATUS = {
    "only_me": {"granted": 404, "mutual": 404, "follower": 404, "stranger": 404},
    "approved": {"granted": 409, "mutual": 201, "follower": 201, "stranger": 201},
    "mutuals": {"granted": 409, "mutual": 409, "follower": 201, "stranger": 201},
    "everyone": {"granted": 409, "mutual": 409, "follower": 409, "stranger": 409},
}


def test_access_requests_over_http(world, anon):
    owner, viewers, cameos = world
    for audience, expectations in REQUEST_STATUS.items():
        cameo = cameos[(audience, "active")]
        url = f"/api/v1/cameos/{cameo.pk}/access-requests"
        for relation, status in expectations.items():
            response = _client(viewers[relation]).post(url, {"message": "please"}, format="json")
            assert response.status_code == status, (audience, relation, response.json())
        for relation in ("blocker", "blocked"):
            assert _client(viewers[relation]).post(url, {}, format="json").status_code == 404
        assert anon.post(url, {}, format="json").status_code == 401
        # Inactive cameos are invisible to everyone but the owner.
        for status in ("verifying", "needs_review", "rejected", "revoked", "awaiting_recording"):
            inactive = cameos[(audience, status)]
            response = _client(viewers["stranger"]).post(
                f"/api/v1/cameos/{inactive.pk}/access-requests", {}, format="json"
            )
            assert response.status_code == 404
    expected_count = sum(1 for exp in REQUEST_STATUS.values() for s in exp.values() if s == 201)
    assert AccessRequest.objects.count() == expected_count

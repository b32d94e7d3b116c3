import pytest
from django.contrib.admin.sites import site
from django.test import RequestFactory

from accounts.models import Notification
from cameos.consent import cameo_can_use
from cameos.models import (
    AccessRequest,
    Cameo,
    CameoEvent,
    CameoGrant,
    CameoInstructions,
    CameoReview,
    CameoStatus,
)
from tests.factories import UserFactory
from tests.helpers import assert_error

pytestmark = pytest.mark.django_db


def test_create_validates_handles(api, make_user, make_cameo, user):
    make_user(username="bob")
    make_cameo(user, handle="clock")
    cases = [
        ({"kind": "object", "display_name": "x", "handle": "CLOCK"}, "handle_taken"),
        ({"kind": "object", "display_name": "x", "handle": "cl0ck"}, "handle_taken"),
        (
            {"kind": "object", "display_name": "x", "handle": "bob"},
            "handle_taken",
        ),  # another user's name
        ({"kind": "object", "display_name": "x", "handle": "admin"}, "invalid"),
        ({"kind": "robot", "display_name": "x"}, "invalid"),
        ({"kind": "object", "display_name": "   "}, "invalid"),
        ({"kind": "object", "display_name": 5}, "invalid"),
    ]
    for body, code in cases:
        assert_error(api.post("/api/v1/cameos", body, format="json"), 400, code)
    assert Cameo.objects.count() == 1


def test_one_person_cameo_per_user(api):
    assert (
        api.post(
            "/api/v1/cameos", {"kind": "person", "display_name": "Me"}, format="json"
        ).status_code
        == 201
    )
    assert_error(
        api.post("/api/v1/cameos", {"kind": "person", "display_name": "Me2"}, format="json"),
        409,
        "person_cameo_exists",
    )


def test_teen_defaults_to_only_me_and_cannot_open_to_everyone(client_of, teen_birth_date):
    teen = UserFactory(username="teen", birth_date=teen_birth_date)
    client = client_of(teen)
    body = client.post(
        "/api/v1/cameos", {"kind": "pet", "display_name": "Cat"}, format="json"
    ).json()
    assert body["audience"] == "only_me"
    assert_error(
        client.patch(f"/api/v1/cameos/{body['id']}", {"audience": "everyone"}, format="json"),
        400,
        "audience_not_allowed",
    )
    assert Cameo.objects.get(pk=body["id"]).audience == "only_me"
    assert (
        client.patch(
            f"/api/v1/cameos/{body['id']}", {"audience": "mutuals"}, format="json"
        ).status_code
        == 200
    )


def test_instructions_are_versioned(api, user, make_cameo):
    cameo = make_cameo(user)
    url = f"/api/v1/cameos/{cameo.pk}"
    body = api.patch(
        url, {"instructions": "a walking clock that talks like a game-show host"}, format="json"
    ).json()
    assert body["instructions_version"] == 2
    body = api.patch(url, {"restrictions": "never sad"}, format="json").json()
    assert body["instructions_version"] == 3
    api.patch(url, {"restrictions": "never sad"}, format="json")  # unchanged: no new version
    versions = list(
        CameoInstructions.objects.filter(cameo=cameo)
        .order_by("version")
        .values_list("version", "instructions", "restrictions")
    )
    assert versions == [
        (1, "", ""),
        (2, "a walking clock that talks like a game-show host", ""),
        (3, "a walking clock that talks like a game-show host", "never sad"),
    ]
    assert_error(
        api.patch(url, {"instructions": "x" * 501}, format="json"), 400, "invalid", "instructions"
    )
    assert Cameo.objects.get(pk=cameo.pk).instructions_version == 3


def test_non_owner_cannot_edit_or_see_private_fields(client_of, other, user, make_cameo):
    cameo = make_cameo(user, audience="everyone")
    bob = client_of(other)
    body = bob.get(f"/api/v1/cameos/{cameo.pk}").json()
    assert body["challenge"] is None and body["monetization_enabled"] is None
    assert_error(
        bob.patch(f"/api/v1/cameos/{cameo.pk}", {"audience": "only_me"}, format="json"),
        403,
        "permission_denied",
    )
    assert_error(bob.delete(f"/api/v1/cameos/{cameo.pk}"), 403, "permission_denied")
    assert_error(bob.get(f"/api/v1/cameos/{cameo.pk}/grants"), 403, "permission_denied")
    assert_error(bob.get(f"/api/v1/cameos/{cameo.pk}/access-requests"), 403, "permission_denied")
    cameo.refresh_from_db()
    assert cameo.audience == "everyone" and cameo.status == "active"


def test_access_request_approve_flow(api, client_of, user, other, make_cameo):
    cameo = make_cameo(user, audience="approved")
    bob = client_of(other)
    response = bob.post(
        f"/api/v1/cameos/{cameo.pk}/access-requests", {"message": "for a skit"}, format="json"
    )
    assert response.status_code == 201 and response.json()["status"] == "pending"
    rid = response.json()["id"]
    assert_error(
        bob.post(f"/api/v1/cameos/{cameo.pk}/access-requests", {}, format="json"),
        409,
        "request_pending",
    )
    assert Notification.objects.filter(recipient=user, kind="cameo.access_requested").count() == 1
    listing = api.get(f"/api/v1/cameos/{cameo.pk}/access-requests").json()["results"]
    assert [(r["id"], r["requester"]["username"]) for r in listing] == [(rid, "bob")]
    # Only the owner decides.
    assert_error(
        bob.post(f"/api/v1/cameos/{cameo.pk}/access-requests/{rid}/approve"),
        403,
        "permission_denied",
    )
    assert (
        api.post(f"/api/v1/cameos/{cameo.pk}/access-requests/{rid}/approve").json()["status"]
        == "approved"
    )
    assert cameo_can_use(other, cameo).reason == "granted"
    assert Notification.objects.filter(recipient=other, kind="cameo.granted").count() == 1
    assert_error(
        api.post(f"/api/v1/cameos/{cameo.pk}/access-requests/{rid}/deny"), 409, "invalid_transition"
    )
    ids = [row["id"] for row in bob.get("/api/v1/cameos?scope=usable").json()["results"]]
    assert ids == [str(cameo.pk)]


def test_access_request_deny(api, client_of, user, other, make_cameo):
    cameo = make_cameo(user)
    rid = (
        client_of(other)
        .post(f"/api/v1/cameos/{cameo.pk}/access-requests", {}, format="json")
        .json()["id"]
    )
    assert (
        api.post(f"/api/v1/cameos/{cameo.pk}/access-requests/{rid}/deny").json()["status"]
        == "denied"
    )
    assert not CameoGrant.objects.exists()
    assert Notification.objects.filter(recipient=other, kind="cameo.access_denied").exists()
    # Someone else's request id under my cameo: 404.
    other_cameo = make_cameo(other, handle="bobs.thing")
    foreign = AccessRequest.objects.create(cameo=other_cameo, requester=user)
    assert_error(
        api.post(f"/api/v1/cameos/{cameo.pk}/access-requests/{foreign.pk}/approve"),
        404,
        "not_found",
    )


def test_grants_api(api, client_of, user, other, make_cameo):
    cameo = make_cameo(user)
    assert (
        api.post(
            f"/api/v1/cameos/{cameo.pk}/grants", {"username": "bob"}, format="json"
        ).status_code
        == 201
    )
    assert (
        api.post(
            f"/api/v1/cameos/{cameo.pk}/grants", {"username": "bob"}, format="json"
        ).status_code
        == 201
    )
    assert CameoGrant.objects.count() == 1
    assert [
        g["user"]["username"]
        for g in api.get(f"/api/v1/cameos/{cameo.pk}/grants").json()["results"]
    ] == ["bob"]
    assert_error(
        api.post(f"/api/v1/cameos/{cameo.pk}/grants", {"username": "alice"}, format="json"),
        400,
        "cannot_grant_self",
    )
    assert_error(
        api.post(f"/api/v1/cameos/{cameo.pk}/grants", {"username": "nobody"}, format="json"),
        404,
        "not_found",
    )
    assert api.delete(f"/api/v1/cameos/{cameo.pk}/grants/bob").status_code == 204
    assert not cameo_can_use(other, cameo).allowed


def test_block_voids_grants_and_requests(api, client_of, user, other, make_cameo):
    mine, theirs = make_cameo(user), make_cameo(other, handle="bobs.thing")
    api.post(f"/api/v1/cameos/{mine.pk}/grants", {"username": "bob"}, format="json")
    client_of(other).post(
        f"/api/v1/cameos/{theirs.pk}/grants", {"username": "alice"}, format="json"
    )
    carol = UserFactory(username="carol")
    AccessRequest.objects.create(cameo=mine, requester=other)
    assert api.post("/api/v1/users/bob/block").status_code == 204
    assert not CameoGrant.objects.filter(user__in=[user, other]).exists()
    assert AccessRequest.objects.get(cameo=mine).status == "cancelled"
    assert_error(
        api.post(f"/api/v1/cameos/{mine.pk}/grants", {"username": "bob"}, format="json"),
        403,
        "blocked",
    )
    assert carol is not None


def test_revoke(api, client_of, user, other, make_cameo):
    cameo = make_cameo(user, audience="everyone")
    AccessRequest.objects.create(cameo=cameo, requester=other)
    assert api.delete(f"/api/v1/cameos/{cameo.pk}").status_code == 204
    cameo.refresh_from_db()
    assert cameo.status == "revoked"
    assert not cameo_can_use(other, cameo).allowed and not cameo_can_use(user, cameo).allowed
    assert AccessRequest.objects.get(cameo=cameo).status == "cancelled"
    assert api.delete(f"/api/v1/cameos/{cameo.pk}").status_code == 204  # idempotent
    assert_error(
        api.patch(f"/api/v1/cameos/{cameo.pk}", {"audience": "everyone"}, format="json"),
        409,
        "cameo_revoked",
    )
    assert_error(client_of(other).get(f"/api/v1/cameos/{cameo.pk}"), 404, "not_found")


def test_account_deletion_revokes_cameos(api, user, make_cameo):
    cameo = make_cameo(user)
    assert api.delete("/api/v1/me").status_code == 204
    assert not Cameo.objects.filter(pk=cameo.pk).exists()  # cascaded after the revoke hook ran


def test_usable_list_constant_queries(client_of, other, make_cameo):
    bob = client_of(other)
    owners = [UserFactory() for _ in range(3)]

    def count_queries():
        from django.db import connection
        from django.test.utils import CaptureQueriesContext

        with CaptureQueriesContext(connection) as ctx:
            body = bob.get("/api/v1/cameos?scope=usable&limit=100").json()
        return len(ctx.captured_queries), len(body["results"])

    make_cameo(owners[0], audience="everyone", handle="first.one")
    count_queries()  # warm-up: the token's once-a-minute last_used_at write
    few = count_queries()
    for i in range(30):
        cameo = make_cameo(
            owners[i % 3], audience=["everyone", "approved"][i % 2], handle=f"many.{i}"
        )
        if i % 2:
            CameoGrant.objects.create(cameo=cameo, user=other)
    many = count_queries()
    assert few[1] == 1 and many[1] == 31
    assert few[0] == many[0] <= 4


def test_admin_review_queue_approves_through_transition(user, make_cameo):
    staff = UserFactory(username="mod", is_staff=True, is_superuser=True)
    pending = make_cameo(user, status=CameoStatus.NEEDS_REVIEW)
    make_cameo(user, status=CameoStatus.ACTIVE, handle="already.ok")
    admin_obj = site._registry[CameoReview]
    request = RequestFactory().post("/admin/")
    request.user = staff
    request._messages = type("M", (), {"add": lambda *a, **k: None})()
    queryset = admin_obj.get_queryset(request)
    assert list(queryset.values_list("pk", flat=True)) == [pending.pk]
    from cameos.admin import approve

    approve(admin_obj, request, queryset)
    pending.refresh_from_db()
    assert pending.status == "active"
    event = CameoEvent.objects.get(cameo=pending)
    assert (event.from_status, event.to_status, event.actor_id) == (
        "needs_review",
        "active",
        staff.pk,
    )
    assert Notification.objects.filter(recipient=user, kind="cameo.active").exists()

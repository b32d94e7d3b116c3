"""Video visibility, content, drafts, appearances and cancellation without the engine."""

import pytest
from django.core.files.storage import default_storage

from accounts.models import Notification
from cameos.models import CameoGrant
from generation.models import Generation, GenerationCameo, Video
from generation.services import generation_transition
from tests.conftest import client_for
from tests.factories import UserFactory
from tests.helpers import assert_error

pytestmark = pytest.mark.django_db


@pytest.fixture
def scene(user, other, active_cameo, make_video_row):
    """bob made a draft with alice's cameo; carol is a stranger."""
    cameo = active_cameo(user, handle="alice.clock")
    CameoGrant.objects.create(cameo=cameo, user=other)
    video = make_video_row(other, cameos=[cameo])
    carol = UserFactory(username="carol")
    return cameo, video, carol


def test_visibility_of_a_draft(scene, api, client_of, other, anon):
    cameo, video, carol = scene
    for client, status in ((client_of(other), 200), (api, 200), (client_of(carol), 404)):
        assert client.get(f"/api/v1/videos/{video.pk}").status_code == status
        response = client.get(f"/api/v1/videos/{video.pk}/content?variant=poster")
        assert response.status_code == status
        if status == 200:
            assert b"".join(response.streaming_content) == b"jpg"
            assert response["Content-Type"] == "image/jpeg"
    assert anon.get(f"/api/v1/videos/{video.pk}").status_code == 401
    assert_error(
        client_of(other).get(f"/api/v1/videos/{video.pk}/content?variant=../../etc"),
        400,
        "invalid",
        "variant",
    )


def test_posted_is_visible_to_all_and_removed_to_none(scene, client_of, other):
    cameo, video, carol = scene
    Video.objects.filter(pk=video.pk).update(state="posted")
    assert client_of(carol).get(f"/api/v1/videos/{video.pk}").status_code == 200
    Video.objects.filter(pk=video.pk).update(state="removed")
    assert client_of(other).get(f"/api/v1/videos/{video.pk}").status_code == 404


def test_drafts_list_is_own_only(scene, client_of, other, api):
    _, video, _ = scene
    assert [v["id"] for v in client_of(other).get("/api/v1/drafts").json()["results"]] == [
        str(video.pk)
    ]
    assert api.get("/api/v1/drafts").json()["results"] == []


def test_cameo_owner_sees_and_removes_appearance(
    scene, api, client_of, other, user, django_capture_on_commit_callbacks
):
    cameo, video, carol = scene
    rows = api.get(f"/api/v1/cameos/{cameo.pk}/appearances").json()["results"]
    assert [(r["video"]["id"], r["video"]["state"], r["instructions_version"]) for r in rows] == [
        (str(video.pk), "draft", 1)
    ]
    assert_error(
        client_of(other).get(f"/api/v1/cameos/{cameo.pk}/appearances"), 403, "permission_denied"
    )
    assert_error(
        client_of(carol).delete(f"/api/v1/cameos/{cameo.pk}/appearances/{video.pk}"),
        403,
        "permission_denied",
    )
    files = [video.content, video.poster, video.preview]
    with django_capture_on_commit_callbacks(execute=True):
        assert api.delete(f"/api/v1/cameos/{cameo.pk}/appearances/{video.pk}").status_code == 204
    video.refresh_from_db()
    assert video.state == "removed"
    assert not any(default_storage.exists(name) for name in files)
    assert client_of(other).get(f"/api/v1/videos/{video.pk}/content").status_code == 404
    assert api.get(f"/api/v1/cameos/{cameo.pk}/appearances").json()["results"] == []
    assert Notification.objects.filter(recipient=other, kind="video.removed").count() == 1
    assert_error(api.delete(f"/api/v1/cameos/{cameo.pk}/appearances/{video.pk}"), 404, "not_found")


def test_cannot_remove_a_video_without_your_cameo(user, api, active_cameo, make_video_row, other):
    cameo = active_cameo(user, handle="alice.clock")
    unrelated = make_video_row(other)
    assert_error(
        api.delete(f"/api/v1/cameos/{cameo.pk}/appearances/{unrelated.pk}"), 404, "not_found"
    )
    unrelated.refresh_from_db()
    assert unrelated.state == "draft"


def test_generations_are_private(api, client_of, other):
    job_id = api.post("/api/v1/generations", {"prompt": "x"}, format="json").json()["id"]
    assert client_of(other).get(f"/api/v1/generations/{job_id}").status_code == 404
    assert_error(client_of(other).post(f"/api/v1/generations/{job_id}/cancel"), 404, "not_found")
    assert [g["id"] for g in api.get("/api/v1/generations").json()["results"]] == [job_id]
    assert client_of(other).get("/api/v1/generations").json()["results"] == []


def test_cancel(api):
    job_id = api.post("/api/v1/generations", {"prompt": "x"}, format="json").json()["id"]
    body = api.post(f"/api/v1/generations/{job_id}/cancel").json()
    assert body["status"] == "cancelled" and body["error"]["code"] == "cancelled"
    assert_error(api.post(f"/api/v1/generations/{job_id}/cancel"), 409, "invalid_transition")


def test_revoking_a_cameo_fails_its_jobs(user, other, active_cameo):
    cameo = active_cameo(user, handle="alice.clock")
    CameoGrant.objects.create(cameo=cameo, user=other)
    bob = client_for(other)
    queued = bob.post(
        "/api/v1/generations", {"prompt": "@alice.clock sings"}, format="json"
    ).json()["id"]
    running = bob.post(
        "/api/v1/generations", {"prompt": "@alice.clock dances"}, format="json"
    ).json()["id"]
    unrelated = bob.post("/api/v1/generations", {"prompt": "a cat"}, format="json").json()["id"]
    Generation.objects.filter(pk=running).update(status="running", attempts=1)
    assert client_for(user).delete(f"/api/v1/cameos/{cameo.pk}").status_code == 204
    states = dict(Generation.objects.values_list("id", "status"))
    assert {str(k): v for k, v in states.items()} == {
        queued: "failed",
        running: "failed",
        unrelated: "queued",
    }
    assert Generation.objects.get(pk=queued).error_code == "cameo_consent_revoked"


def test_ungrant_fails_that_users_jobs_only(user, other, active_cameo):
    cameo = active_cameo(user, handle="alice.clock", audience="approved")
    carol = UserFactory(username="carol")
    for u in (other, carol):
        CameoGrant.objects.create(cameo=cameo, user=u)
    bobs = (
        client_for(other)
        .post("/api/v1/generations", {"prompt": "@alice.clock"}, format="json")
        .json()["id"]
    )
    carols = (
        client_for(carol)
        .post("/api/v1/generations", {"prompt": "@alice.clock"}, format="json")
        .json()["id"]
    )
    assert client_for(user).delete(f"/api/v1/cameos/{cameo.pk}/grants/bob").status_code == 204
    assert Generation.objects.get(pk=bobs).status == "failed"
    assert Generation.objects.get(pk=carols).status == "queued"


def test_transition_table_is_enforced(api):
    job = Generation.objects.get(
        pk=api.post("/api/v1/generations", {"prompt": "x"}, format="json").json()["id"]
    )
    generation_transition(generation=job, to="cancelled")
    from config.core.errors import Conflict

    with pytest.raises(Conflict):
        generation_transition(generation=job, to="running")
    assert GenerationCameo.objects.count() == 0

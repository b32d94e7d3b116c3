"""Create a cameo, upload a recording, and a real worker verifies it through the broker."""

import time

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from cameos.consent import cameo_can_use
from cameos.models import Cameo
from tests.conftest import client_for
from tests.factories import UserFactory
from tests.media import make_video

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def wait_for(predicate, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def test_recording_is_verified_by_a_real_worker_then_granted(celery_worker):
    alice, bob = UserFactory(username="alice"), UserFactory(username="bob")
    api = client_for(alice)
    cameo_id = api.post(
        "/api/v1/cameos", {"kind": "person", "display_name": "Alice"}, format="json"
    ).json()["id"]
    video = SimpleUploadedFile("me.mp4", make_video(3.0), content_type="video/mp4")
    response = api.put(f"/api/v1/cameos/{cameo_id}/recording", {"video": video}, format="multipart")
    assert response.status_code == 202
    assert wait_for(lambda: Cameo.objects.get(pk=cameo_id).status != "verifying")
    cameo = Cameo.objects.get(pk=cameo_id)
    assert cameo.status == "active", cameo.status_reason
    assert len(cameo.reference_frames) == 4
    assert not cameo_can_use(bob, cameo).allowed
    assert (
        api.post(
            f"/api/v1/cameos/{cameo_id}/grants", {"username": "bob"}, format="json"
        ).status_code
        == 201
    )
    assert cameo_can_use(bob, cameo).reason == "granted"
    usable = client_for(bob).get("/api/v1/cameos?scope=usable").json()["results"]
    assert [c["handle"] for c in usable] == ["alice"]

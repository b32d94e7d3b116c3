"""Recording uploads with real media made in the test, then the verification task."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from cameos.models import Cameo, CameoEvent, CameoStatus
from cameos.tasks import cameo_verify
from tests.conftest import png_bytes
from tests.helpers import assert_error
from tests.media import make_video

pytestmark = pytest.mark.django_db


@pytest.fixture
def person(api, user):
    response = api.post("/api/v1/cameos", {"kind": "person", "display_name": "Me"}, format="json")
    assert response.status_code == 201
    return Cameo.objects.get(pk=response.json()["id"])


def upload(client, cameo, content, name="rec.mp4", **extra):
    file = SimpleUploadedFile(name, content, content_type="video/mp4")
    return client.put(
        f"/api/v1/cameos/{cameo.pk}/recording", {"video": file}, format="multipart", **extra
    )


def stored(settings):
    root = settings.MEDIA_ROOT
    return sorted(p.name for p in root.rglob("*") if p.is_file()) if root.exists() else []


def test_create_person_cameo_has_a_challenge(person, api):
    body = api.get(f"/api/v1/cameos/{person.pk}").json()
    assert body["status"] == "awaiting_recording"
    assert body["handle"] == "alice"
    assert len(body["challenge"]["digits"]) == 4 and body["challenge"]["digits"].isdigit()
    assert len(body["challenge"]["head_turns"]) == 2


def test_valid_recording_is_verified_and_keeps_reference_frames(
    api, person, settings, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as callbacks:
        response = upload(api, person, make_video(4.0))
    assert response.status_code == 202, response.json()
    assert response.json()["status"] == "verifying"
    assert len(callbacks) == 1  # the verification task, enqueued after commit
    person.refresh_from_db()
    assert person.recording_info["duration_s"] == pytest.approx(4.0, abs=0.15)
    assert person.recording_info["audio_codec"] == "aac"
    assert cameo_verify(str(person.pk)) == "active"
    person.refresh_from_db()
    assert person.status == CameoStatus.ACTIVE
    assert len(person.reference_frames) == 4
    assert person.verification["problems"] == []
    assert person.verification["frames"] == 40
    assert [e.to_status for e in CameoEvent.objects.filter(cameo=person).order_by("id")] == [
        "verifying",
        "active",
    ]
    # Running the task again (a duplicate delivery) changes nothing.
    assert cameo_verify(str(person.pk)) == "skipped"


def test_frozen_recording_is_rejected(api, person):
    assert upload(api, person, make_video(3.0, frozen=True)).status_code == 202
    assert cameo_verify(str(person.pk)) == "rejected"
    person.refresh_from_db()
    assert "frozen" in person.status_reason


def test_silent_recording_is_rejected(api, person):
    assert upload(api, person, make_video(3.0, amplitude=0.0)).status_code == 202
    assert cameo_verify(str(person.pk)) == "rejected"
    person.refresh_from_db()
    assert "silent_audio" in person.status_reason


def test_pet_needs_no_audio(api, user):
    pet = api.post(
        "/api/v1/cameos", {"kind": "pet", "display_name": "Rex", "handle": "rex.dog"}, format="json"
    ).json()
    cameo = Cameo.objects.get(pk=pet["id"])
    assert upload(api, cameo, make_video(3.0, audio=False)).status_code == 202
    assert cameo_verify(str(cameo.pk)) == "active"


def test_review_policy_always_sends_to_queue(api, person, settings):
    settings.RIFF_CAMEO_REVIEW_POLICY = "always"
    upload(api, person, make_video(3.0))
    assert cameo_verify(str(person.pk)) == "needs_review"


VIDEO_OK = make_video(3.0)


@pytest.mark.parametrize(
    "make,status,code",
    [
        (lambda: make_video(3.0, audio=False), 400, "recording_no_audio"),
        (lambda: make_video(1.0), 400, "recording_too_short"),
        (lambda: make_video(60.0, size=(64, 48), fps=5), 400, "recording_too_long"),
        (lambda: VIDEO_OK[: len(VIDEO_OK) // 2], 400, "invalid_media"),  # truncated: no moov
        (lambda: b"", 400, "invalid_media"),
        (lambda: png_bytes(), 415, "unsupported_media"),  # a PNG renamed .mp4
        (lambda: b"#EXTM3U\n#EXT-X-VERSION:3\nhttp://example.com/a.ts\n", 415, "unsupported_media"),
    ],
    ids=["no-audio", "1s", "60s", "truncated", "zero-bytes", "png-renamed", "playlist"],
)
def test_bad_recordings_are_refused_and_nothing_is_stored(
    api, person, settings, make, status, code
):
    response = upload(api, person, make())
    assert_error(response, status, code)
    person.refresh_from_db()
    assert person.status == CameoStatus.AWAITING_RECORDING
    assert person.recording == "" and person.recording_info == {}
    assert stored(settings) == []
    assert not CameoEvent.objects.filter(cameo=person).exists()


def test_oversized_claim_is_refused_before_reading(api, person, settings):
    settings.RIFF_CAMEO_MAX_BYTES = 10_000
    content = make_video(3.0)
    response = upload(api, person, content, CONTENT_LENGTH=str(10**10))
    assert_error(response, 413, "too_large")
    assert stored(settings) == []


def test_file_over_the_cap(api, person, settings):
    settings.RIFF_CAMEO_MAX_BYTES = 10_000
    assert_error(upload(api, person, make_video(3.0)), 413, "too_large")
    assert stored(settings) == []


def test_missing_video_field(api, person):
    response = api.put(f"/api/v1/cameos/{person.pk}/recording", {}, format="multipart")
    assert_error(response, 400, "invalid", "video")


def test_only_the_owner_uploads(client_of, other, person, settings):
    # Not visible to others while awaiting a recording: 404, and nothing stored.
    assert_error(upload(client_of(other), person, make_video(3.0)), 404, "not_found")
    assert stored(settings) == []


def test_upload_twice_while_verifying_conflicts(api, person):
    assert upload(api, person, make_video(3.0)).status_code == 202
    assert_error(upload(api, person, make_video(3.0)), 409, "invalid_transition")


def test_expired_challenge_rotates(api, person, settings):
    old = person.challenge
    Cameo.objects.filter(pk=person.pk).update(
        challenge={**old, "expires_at": "2000-01-01T00:00:00+00:00"}
    )
    assert_error(upload(api, person, make_video(3.0)), 409, "challenge_expired")
    person.refresh_from_db()
    assert (
        person.challenge["digits"] != ""
        and person.challenge["expires_at"] != "2000-01-01T00:00:00+00:00"
    )
    assert stored(settings) == []

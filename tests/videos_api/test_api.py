"""The Videos API without a worker: shapes, refusals, consent through a source video, delete
and cancel, the error shape, the per-key rate. Every refusal leaves nothing behind."""

from __future__ import annotations

import base64
import uuid

import pytest
from django.core.files.storage import default_storage
from rest_framework.test import APIClient

from accounts.apikeys import api_key_create
from cameos.models import Audience
from cameos.services import cameo_grant, cameo_ungrant
from generation.models import Generation, GenerationStatus, SourceMode, VideoState
from tests.conftest import png_bytes
from tests.factories import token_for

pytestmark = pytest.mark.django_db


def key_client(user) -> APIClient:
    _key, raw = api_key_create(user=user, name="test")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


@pytest.fixture
def v1(user):
    return key_client(user)


def error_of(response) -> dict:
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}
    return body["error"]


def stored(prefix: str) -> list[str]:
    try:
        return default_storage.listdir(prefix)[1]
    except FileNotFoundError:
        return []


def test_create_answers_the_video_object_and_a_poll_hint(v1, user, settings):
    settings.RIFF_VIDEOS_POLL_AFTER_MS = 1234
    response = v1.post(
        "/v1/videos", {"prompt": " a red ball ", "seconds": "8", "size": "1280x720"}, format="json"
    )
    assert response.status_code == 200
    body = response.json()
    job = Generation.objects.get(pk=body["id"])
    assert body == {
        "id": str(job.pk),
        "object": "video",
        "model": "riff-world",
        "status": "queued",
        "progress": 0,
        "created_at": int(job.created_at.timestamp()),
        "completed_at": None,
        "expires_at": None,
        "prompt": "a red ball",
        "remixed_from_video_id": None,
        "seconds": "8",
        "size": "1280x720",
        "error": None,
    }
    assert response["openai-poll-after-ms"] == "1234"
    assert (job.owner, job.seconds, job.size, job.aspect, job.model) == (
        user,
        8,
        "1280x720",
        "16:9",
        "riff-world",
    )
    # The defaults are the closed API's: 4 seconds, 720x1280; its model names are aliases.
    body = v1.post("/v1/videos", {"prompt": "x", "model": "sora-2"}, format="json").json()
    assert (body["seconds"], body["size"], body["model"]) == ("4", "720x1280", "riff-world")


def test_multipart_forms_with_nested_keys_as_the_official_client_sends_them(v1):
    data_url = "data:image/png;base64," + base64.b64encode(png_bytes((40, 30))).decode()
    response = v1.post(
        "/v1/videos",
        {"prompt": "from a picture", "seconds": "4", "input_reference[image_url]": data_url},
        format="multipart",
    )
    assert response.status_code == 200, response.json()
    job = Generation.objects.get(pk=response.json()["id"])
    assert job.reference_image.startswith("references/") and job.reference_image.endswith(".png")
    with default_storage.open(job.reference_image, "rb") as fh:
        assert fh.read(8) == b"\x89PNG\r\n\x1a\n"

    upload = v1.post(
        "/v1/videos",
        {"prompt": "from a file", "input_reference": _file("ref.jpg", png_bytes(fmt="JPEG"))},
        format="multipart",
    )
    assert upload.status_code == 200
    assert Generation.objects.get(pk=upload.json()["id"]).reference_image


def _file(name: str, data: bytes):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile(name, data)


@pytest.mark.parametrize(
    ("body", "fmt", "status", "param", "code"),
    [
        ({"prompt": "x", "seconds": "5"}, "json", 400, "seconds", "invalid"),
        ({"prompt": "x", "seconds": 4.5}, "json", 400, "seconds", "invalid"),
        ({"prompt": "x", "size": "640x480"}, "json", 400, "size", "invalid"),
        ({"prompt": "x", "model": "gpt-video"}, "json", 400, "model", "model_not_found"),
        ({"prompt": "x", "model": 7}, "json", 400, "model", "invalid"),
        ({"prompt": "   "}, "json", 400, "prompt", "invalid"),
        ({"prompt": "x" * 1001}, "json", 400, "prompt", "invalid"),
        ({"prompt": "a\x00b"}, "multipart", 400, "prompt", "invalid"),
        ({"prompt": "x", "duration": 5}, "json", 400, "duration", "invalid"),
        ({}, "json", 400, "prompt", "invalid"),
        (
            {"prompt": "x", "input_reference": {"image_url": "http://169.254.169.254/a.png"}},
            "json",
            400,
            "input_reference",
            "input_reference_unsupported",
        ),
        (
            {"prompt": "x", "input_reference": {"file_id": "file_123"}},
            "json",
            400,
            "input_reference",
            "input_reference_unsupported",
        ),
        (
            {"prompt": "x", "input_reference": {"image_url": "data:image/png;base64,%%%"}},
            "json",
            400,
            "input_reference",
            "invalid_media",
        ),
        (
            {"prompt": "x", "input_reference": {"image_url": "data:image/png;base64,aGVsbG8="}},
            "json",
            400,
            "input_reference",
            "unsupported_media",
        ),
        (
            {"prompt": "x", "input_reference": "yes"},
            "json",
            400,
            "input_reference",
            "invalid_media",
        ),
        (
            {"prompt": "x", "input_reference": "a", "input_reference[image_url]": "b"},
            "multipart",
            400,
            "input_reference",
            "invalid",
        ),
    ],
)
def test_bad_create_requests_are_refused_and_write_nothing(v1, body, fmt, status, param, code):
    response = v1.post("/v1/videos", body, format=fmt)
    assert response.status_code == status
    error = error_of(response)
    assert (error["param"], error["code"], error["type"]) == (param, code, "invalid_request_error")
    assert Generation.objects.count() == 0
    assert stored("references") == []


def test_a_broken_image_upload_is_refused_without_a_file_left(v1, settings):
    response = v1.post(
        "/v1/videos",
        {"prompt": "x", "input_reference": _file("ref.png", b"\x89PNG\r\n\x1a\nbroken")},
        format="multipart",
    )
    assert (response.status_code, error_of(response)["code"]) == (400, "unsupported_media")
    settings.RIFF_VIDEO_REFERENCE_IMAGES = False
    response = v1.post(
        "/v1/videos",
        {"prompt": "x", "input_reference": _file("ref.png", png_bytes())},
        format="multipart",
    )
    assert error_of(response)["code"] == "input_reference_unsupported"
    assert Generation.objects.count() == 0 and stored("references") == []


@pytest.mark.parametrize(
    "backend,options,takes",
    [
        ("diffusers", {"family": "wan", "path": "/m/t2v"}, False),  # text alone
        ("diffusers", {"family": "wan", "path": "/m/t2v", "i2v_path": "/m/i2v"}, True),
        ("remote", {"base_url": "https://gpu.example.org/v1", "send_context": False}, False),
        ("remote", {"base_url": "https://gpu.example.org/v1"}, True),
    ],
)
def test_a_model_that_takes_no_image_refuses_a_reference_up_front(
    v1, settings, backend, options, takes
):
    from generation.engine.backends import register_engine

    register_engine("img-test", backend, **options)
    settings.RIFF_VIDEO_MODELS = [settings.RIFF_ENGINE, "img-test"]
    response = v1.post(
        "/v1/videos",
        {"prompt": "x", "model": "img-test", "input_reference": _file("ref.png", png_bytes())},
        format="multipart",
    )
    if takes:
        assert response.status_code == 200, response.json()
        assert Generation.objects.get(pk=response.json()["id"]).reference_image
    else:
        error = error_of(response)
        assert (response.status_code, error["code"]) == (400, "input_reference_unsupported")
        assert "img-test engine can't start a clip from an image" in error["message"]
        assert Generation.objects.count() == 0 and stored("references") == []


def test_a_refused_admission_deletes_the_stored_reference(v1, user, settings):
    settings.RIFF_DAILY_QUOTA = 0
    response = v1.post(
        "/v1/videos",
        {"prompt": "x", "input_reference": _file("ref.png", png_bytes())},
        format="multipart",
    )
    assert (response.status_code, error_of(response)["type"]) == (429, "insufficient_quota")
    assert Generation.objects.count() == 0 and stored("references") == []


def test_keys_only_and_errors_in_openai_shape_everywhere_under_v1(user, anon, settings):
    response = anon.get("/v1/videos")
    assert response.status_code == 401
    assert error_of(response)["type"] == "authentication_error"
    session = APIClient()
    session.credentials(HTTP_AUTHORIZATION=f"Bearer {token_for(user)}")
    assert session.get("/v1/videos").status_code == 401
    v1 = key_client(user)
    unknown = v1.get("/v1/nothing/here")
    assert unknown.status_code == 404 and error_of(unknown)["code"] == "not_found"
    wrong_method = v1.put("/v1/videos", {}, format="json")
    assert wrong_method.status_code == 405 and error_of(wrong_method)["code"]
    # In DEBUG (`make run`) too: no HTML page under /v1/, every method.
    settings.DEBUG = True
    for method in ("get", "post", "put", "patch", "delete"):
        response = getattr(v1, method)("/v1/videos/a/b/c")
        assert response["Content-Type"] == "application/json", method
        assert (response.status_code, error_of(response)["code"]) == (404, "not_found")
    # Riff's own API keeps its envelope.
    assert set(anon.get("/api/v1/me").json()["error"]) == {"code", "message"}


def test_list_validates_its_parameters(v1, user, other):
    theirs = key_client(other).post("/v1/videos", {"prompt": "x"}, format="json").json()["id"]
    for query, param in (
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("limit=ten", "limit"),
        ("order=sideways", "order"),
        (f"after={theirs}", "after"),
        ("after=not-an-id", "after"),
    ):
        response = v1.get(f"/v1/videos?{query}")
        assert response.status_code == 400, query
        assert error_of(response)["param"] == param
    assert v1.get("/v1/videos").json() == {
        "object": "list",
        "data": [],
        "first_id": None,
        "last_id": None,
        "has_more": False,
    }


def test_cancel_then_cancel_again(v1):
    job = v1.post("/v1/videos", {"prompt": "x"}, format="json").json()["id"]
    response = v1.post(f"/v1/videos/{job}/cancel")
    assert response.status_code == 200 and "openai-poll-after-ms" not in response
    body = response.json()
    assert (body["status"], body["error"]["code"]) == ("failed", "cancelled")
    assert Generation.objects.get(pk=job).status == GenerationStatus.CANCELLED
    again = v1.post(f"/v1/videos/{job}/cancel")
    assert again.status_code == 409 and error_of(again)["code"] == "invalid_transition"


def test_content_of_an_unfinished_or_failed_video(v1, user, make_video_row):
    job = v1.post("/v1/videos", {"prompt": "x"}, format="json").json()["id"]
    pending = v1.get(f"/v1/videos/{job}/content", HTTP_ACCEPT="application/binary")
    assert pending.status_code == 409 and error_of(pending)["code"] == "video_not_ready"
    v1.post(f"/v1/videos/{job}/cancel")
    assert v1.get(f"/v1/videos/{job}/content").status_code == 404
    video = make_video_row(user)
    ok = v1.get(f"/v1/videos/{video.generation_id}/content", HTTP_ACCEPT="application/binary")
    assert ok.status_code == 200 and ok["Content-Type"] == "video/mp4"
    assert b"".join(ok.streaming_content) == b"\0\0\0\x18ftypmp42"
    thumb = v1.get(f"/v1/videos/{video.generation_id}/content?variant=thumbnail")
    assert thumb.status_code == 200 and thumb["Content-Type"] == "image/jpeg"
    bad = v1.get(f"/v1/videos/{video.generation_id}/content?variant=poster")
    assert bad.status_code == 400 and error_of(bad)["param"] == "variant"


def test_a_held_video_reads_failed_and_has_no_content(v1, user, make_video_row):
    video = make_video_row(user, state=VideoState.HELD)
    body = v1.get(f"/v1/videos/{video.generation_id}").json()
    assert (body["status"], body["error"]["code"]) == ("failed", "held_for_review")
    assert v1.get(f"/v1/videos/{video.generation_id}/content").status_code == 404
    extend = v1.post(
        "/v1/videos/extensions",
        {"prompt": "more", "seconds": "4", "video": {"id": str(video.generation_id)}},
        format="json",
    )
    assert extend.status_code == 409 and error_of(extend)["code"] == "video_unavailable"


def test_delete_cancels_removes_and_hides(v1, user, make_post):
    queued = v1.post("/v1/videos", {"prompt": "x"}, format="json").json()["id"]
    response = v1.delete(f"/v1/videos/{queued}")
    assert response.json() == {"id": queued, "object": "video.deleted", "deleted": True}
    job = Generation.objects.get(pk=queued)
    assert job.status == GenerationStatus.CANCELLED and job.api_deleted_at is not None
    assert v1.get(f"/v1/videos/{queued}").status_code == 404
    assert v1.delete(f"/v1/videos/{queued}").status_code == 404

    post = make_post(user)
    done = str(post.video.generation_id)
    assert v1.delete(f"/v1/videos/{done}").status_code == 200
    post.refresh_from_db()
    post.video.refresh_from_db()
    assert post.video.state == VideoState.REMOVED and post.state == "removed"
    assert v1.get("/v1/videos").json()["data"] == []


def test_sources_must_be_own_and_finished(v1, user, other, make_video_row):
    theirs = make_video_row(other)
    queued = v1.post("/v1/videos", {"prompt": "x"}, format="json").json()["id"]
    before = Generation.objects.count()
    for path, body, status, code in (
        (f"/v1/videos/{theirs.generation_id}/remix", {"prompt": "p"}, 404, "not_found"),
        (
            "/v1/videos/extensions",
            {"prompt": "p", "seconds": "4", "video": {"id": str(theirs.generation_id)}},
            404,
            "not_found",
        ),
        ("/v1/videos/edits", {"prompt": "p", "video": {"id": queued}}, 409, "video_not_ready"),
        ("/v1/videos/edits", {"prompt": "p", "video": queued}, 400, "invalid"),
        ("/v1/videos/edits", {"prompt": "p", "video": {"id": 5}}, 400, "invalid"),
        (
            "/v1/videos/extensions",
            {"prompt": "p", "seconds": "3", "video": {"id": queued}},
            400,
            "invalid",
        ),
    ):
        response = v1.post(path, body, format="json")
        assert (response.status_code, error_of(response)["code"]) == (status, code), path
    assert Generation.objects.count() == before


def test_an_extension_may_not_grow_past_the_cap(v1, user, make_video_row, settings):
    settings.RIFF_VIDEO_MAX_SECONDS = 10
    video = make_video_row(user)  # 2 s
    body = {"prompt": "more", "seconds": "12", "video": {"id": str(video.generation_id)}}
    response = v1.post("/v1/videos/extensions", body, format="json")
    assert (response.status_code, error_of(response)["param"]) == (400, "seconds")
    body["seconds"] = "8"
    response = v1.post("/v1/videos/extensions", body, format="json")
    assert response.status_code == 200
    assert response.json()["seconds"] == "10"  # 2 s source + 8 s
    job = Generation.objects.get(pk=response.json()["id"])
    assert (job.source_video_id, job.source_mode, job.seconds) == (video.pk, SourceMode.EXTEND, 8)


def test_a_source_videos_cameos_need_consent_again(v1, user, other, make_video_row, active_cameo):
    """Consent can't be laundered through an extension, an edit or a remix: the source's
    cameos are checked as if named, and a withdrawn grant refuses all three."""
    cameo = active_cameo(other, audience=Audience.APPROVED)
    cameo_grant(cameo=cameo, user=user, granted_by=other)
    video = make_video_row(user, cameos=[cameo])
    source = str(video.generation_id)
    allowed = v1.post("/v1/videos/edits", {"prompt": "p", "video": {"id": source}}, format="json")
    assert allowed.status_code == 200
    assert list(
        Generation.objects.get(pk=allowed.json()["id"]).cameo_links.values_list(
            "cameo_id", flat=True
        )
    ) == [cameo.pk]
    cameo_ungrant(cameo=cameo, user=user)
    before = Generation.objects.count()
    for path, body in (
        ("/v1/videos/edits", {"prompt": "p", "video": {"id": source}}),
        ("/v1/videos/extensions", {"prompt": "p", "seconds": "4", "video": {"id": source}}),
        (f"/v1/videos/{source}/remix", {"prompt": "p"}),
    ):
        response = v1.post(path, body, format="json")
        assert response.status_code == 403, path
        assert error_of(response)["code"] == "cameo_permission_denied"
    assert Generation.objects.count() == before


def test_a_remix_of_a_posted_video_remixes_its_post(v1, user, make_post):
    post = make_post(user)
    response = v1.post(f"/v1/videos/{post.video.generation_id}/remix", {"prompt": "again"})
    assert response.status_code == 200
    body = response.json()
    assert body["remixed_from_video_id"] == str(post.video.generation_id)
    job = Generation.objects.get(pk=body["id"])
    assert (job.remix_of_id, job.source_video_id, job.source_mode) == (
        post.pk,
        post.video.pk,
        SourceMode.REMIX,
    )


def test_each_key_has_its_own_rate(user, monkeypatch):
    from accounts.throttles import ApiKeyThrottle

    monkeypatch.setattr(
        ApiKeyThrottle, "THROTTLE_RATES", {**ApiKeyThrottle.THROTTLE_RATES, "api_key": "3/min"}
    )
    first, second = key_client(user), key_client(user)
    assert [first.get("/v1/videos").status_code for _ in range(3)] == [200] * 3
    limited = first.get("/v1/videos")
    assert limited.status_code == 429 and error_of(limited)["type"] == "rate_limit_error"
    assert int(limited["Retry-After"]) >= 1
    assert second.get("/v1/videos").status_code == 200


def test_characters_refuse_bad_input_and_other_peoples_ids(v1, user, other):
    from cameos.models import Cameo

    bad = v1.post(
        "/v1/videos/characters", {"name": "Cube", "video": _file("x.mp4", b"not a video")}
    )
    assert bad.status_code in (400, 415) and error_of(bad)["param"] == "video"
    missing = v1.post("/v1/videos/characters", {"name": "Cube"})
    assert (missing.status_code, error_of(missing)["param"]) == (400, "video")
    long_name = v1.post(
        "/v1/videos/characters", {"name": "x" * 61, "video": _file("x.mp4", b"...")}
    )
    assert (long_name.status_code, error_of(long_name)["param"]) == (400, "name")
    assert Cameo.objects.count() == 0
    assert v1.get(f"/v1/videos/characters/{uuid.uuid4()}").status_code == 404
    theirs = Cameo.objects.create(
        owner=other, kind="character", display_name="T", handle="t.char", handle_key="t.char"
    )
    assert v1.get(f"/v1/videos/characters/{theirs.pk}").status_code == 404

"""One upload-size validator (config.core.uploads.upload_file) for every multipart endpoint:
the cameo recording, the avatar and the provenance check answer an oversized file alike (413
`too_large` naming the field and its cap) and store nothing."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.core.files.uploadedfile import SimpleUploadedFile

from cameos.models import Cameo, CameoEvent, CameoStatus
from tests.conftest import png_bytes
from tests.helpers import assert_error
from tests.media import make_video

pytestmark = pytest.mark.django_db


@dataclass(frozen=True)
class Endpoint:
    method: str
    field: str
    setting: str
    ok: int  # the status of a good upload exactly at the cap

    def send(self, api, url: str, content: bytes):
        upload = SimpleUploadedFile("upload.bin", content, content_type="application/octet-stream")
        return getattr(api, self.method)(url, {self.field: upload}, format="multipart")


ENDPOINTS = {
    "recording": Endpoint("put", "video", "RIFF_CAMEO_MAX_BYTES", 202),
    "avatar": Endpoint("put", "image", "RIFF_AVATAR_MAX_BYTES", 200),
    "provenance": Endpoint("post", "file", "RIFF_PROVENANCE_MAX_BYTES", 200),
}


@pytest.fixture
def target(api, user):
    """Per endpoint: its URL, a good file for it, and a snapshot of what an upload would
    change (the cameo's recording, the user's avatar, stored files)."""
    cameo = Cameo.objects.get(
        pk=api.post(
            "/api/v1/cameos", {"kind": "person", "display_name": "Me"}, format="json"
        ).json()["id"]
    )
    urls = {
        "recording": (f"/api/v1/cameos/{cameo.pk}/recording", make_video(3.0)),
        "avatar": ("/api/v1/me/avatar", png_bytes()),
        "provenance": ("/api/v1/provenance/verify", make_video(2.0)),
    }

    def state():
        cameo.refresh_from_db()
        user.refresh_from_db()
        root = Path(django_settings.MEDIA_ROOT)
        files = sorted(p.name for p in root.rglob("*") if p.is_file()) if root.exists() else []
        return {
            "cameo": (cameo.status, cameo.recording, cameo.recording_info),
            "events": CameoEvent.objects.filter(cameo=cameo).count(),
            "avatar": (user.avatar_large, user.avatar_small),
            "files": files,
        }

    return urls, state


@pytest.mark.parametrize("name", sorted(ENDPOINTS))
def test_a_file_over_its_cap_is_413_too_large_and_nothing_is_stored(name, api, target, settings):
    endpoint = ENDPOINTS[name]
    urls, state = target
    url, content = urls[name]
    before = state()
    assert before["cameo"][0] == CameoStatus.AWAITING_RECORDING and before["files"] == []
    cap = len(content) - 1
    setattr(settings, endpoint.setting, cap)
    error = assert_error(endpoint.send(api, url, content), 413, "too_large", endpoint.field)
    assert error["fields"][endpoint.field] == [f"At most {cap} bytes."]
    assert str(cap) in error["message"]
    assert state() == before


@pytest.mark.parametrize("name", sorted(ENDPOINTS))
def test_a_file_exactly_at_its_cap_passes_the_size_check(name, api, target, settings):
    endpoint = ENDPOINTS[name]
    urls, _ = target
    url, content = urls[name]
    setattr(settings, endpoint.setting, len(content))
    response = endpoint.send(api, url, content)
    assert response.status_code == endpoint.ok, response.content[:300]


@pytest.mark.parametrize("name", sorted(ENDPOINTS))
def test_a_missing_file_is_400_naming_the_field(name, api, target):
    endpoint = ENDPOINTS[name]
    urls, state = target
    before = state()
    response = getattr(api, endpoint.method)(urls[name][0], {}, format="multipart")
    assert_error(response, 400, "invalid", endpoint.field)
    assert state() == before


def test_no_view_reads_an_upload_around_the_validator():
    base = Path(django_settings.BASE_DIR)
    readers = sorted(
        str(path.relative_to(base))
        for app in ("accounts", "cameos", "rights", "generation", "feed", "remix", "moderation")
        for path in (base / app).rglob("*.py")
        if ".FILES" in path.read_text()
    )
    assert readers == []

"""cameos.faces on real photos, and the character cameo whose recording shows a real person."""

from __future__ import annotations

import io

import av
import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image
from skimage import data

from cameos.faces import face_count
from cameos.models import Cameo, CameoEvent, CameoStatus
from cameos.recording import REAL_PERSON
from cameos.tasks import cameo_verify
from generation.engine.world import make_clip
from tests.media import make_video


def test_a_photo_of_a_person_has_a_face():
    astronaut = data.astronaut()
    assert face_count(astronaut) >= 1
    # at other sizes, padded, as grey and with an alpha channel
    for size in (256, 1024):
        assert face_count(np.asarray(Image.fromarray(astronaut).resize((size, size)))) >= 1
    assert face_count(np.pad(astronaut, ((200, 200), (0, 0), (0, 0)))) >= 1
    assert face_count(np.asarray(Image.fromarray(astronaut).convert("L"))) >= 1
    assert face_count(np.asarray(Image.fromarray(astronaut).convert("RGBA"))) >= 1


@pytest.mark.parametrize("name", ["coffee", "chelsea", "rocket"])
def test_photos_without_a_person_have_none(name):
    assert face_count(getattr(data, name)()) == 0


def test_riff_worlds_own_frames_have_none():
    """The procedural world's frames (and cameo sprites) as the engine makes them and as the
    renderer upscales them (nearest)."""
    for seed in range(40):
        clip = make_clip(seed, cameo=seed % 4 == 0)
        for frame in [clip.frames[0], clip.frames[len(clip.frames) // 2], clip.frames[-1]]:
            frame = np.asarray(frame, dtype=np.uint8)
            assert face_count(frame) == 0, seed
            for size in (128, 512):
                big = Image.fromarray(frame).resize((size, size), Image.Resampling.NEAREST)
                assert face_count(np.asarray(big)) == 0, (seed, size)


def test_tiny_and_bad_inputs():
    assert face_count(np.zeros((16, 16, 3), np.uint8)) == 0
    assert face_count(np.full((480, 640, 3), 128, np.uint8)) == 0
    with pytest.raises(ValueError):
        face_count(data.astronaut().astype(np.float32))


def astronaut_video(seconds: float = 3.0, fps: int = 10) -> bytes:
    """An H.264 clip (no sound) of the astronaut photo, panning slowly: a real person on
    camera, the way someone would try to pass themselves off as a character."""
    photo = np.asarray(Image.fromarray(data.astronaut()).resize((360, 360)))
    out = io.BytesIO()
    with av.open(out, mode="w", format="mp4") as box:
        stream = box.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 320, 320, "yuv420p"
        for i in range(int(seconds * fps)):
            window = np.ascontiguousarray(photo[i % 40 : i % 40 + 320, 20:340])
            for packet in stream.encode(av.VideoFrame.from_ndarray(window, format="rgb24")):
                box.mux(packet)
        for packet in stream.encode():
            box.mux(packet)
    return out.getvalue()


def character(api, handle: str) -> Cameo:
    body = {"kind": "character", "display_name": "Captain", "handle": handle}
    response = api.post("/api/v1/cameos", body, format="json")
    assert response.status_code == 201, response.json()
    return Cameo.objects.get(pk=response.json()["id"])


def upload(api, cameo: Cameo, content: bytes):
    file = SimpleUploadedFile("rec.mp4", content, content_type="video/mp4")
    return api.put(f"/api/v1/cameos/{cameo.pk}/recording", {"video": file}, format="multipart")


@pytest.mark.django_db
def test_a_character_showing_a_real_person_is_rejected(api):
    cameo = character(api, "captain.face")
    assert upload(api, cameo, astronaut_video()).status_code == 202
    assert cameo_verify(str(cameo.pk)) == "rejected"
    cameo.refresh_from_db()
    assert cameo.status == CameoStatus.REJECTED
    assert cameo.status_reason == f"automatic checks: {REAL_PERSON}"
    assert cameo.verification["problems"] == [REAL_PERSON]
    assert [e.to_status for e in CameoEvent.objects.filter(cameo=cameo).order_by("id")] == [
        "verifying",
        "rejected",
    ]
    assert cameo_verify(str(cameo.pk)) == "skipped"


@pytest.mark.django_db
def test_a_character_without_a_face_still_goes_to_human_review(api):
    cameo = character(api, "captain.blob")
    assert upload(api, cameo, make_video(3.0, audio=False)).status_code == 202
    assert cameo_verify(str(cameo.pk)) == "needs_review"
    cameo.refresh_from_db()
    assert cameo.verification["problems"] == []


@pytest.mark.django_db
def test_without_opencv_a_character_goes_to_a_person_told_so(api, monkeypatch):
    """A media worker installed without the `worker` extra can't look for faces: the
    character goes to human review (as every character does), never to `active`."""
    from cameos import faces

    def no_opencv(image):
        raise ImportError("No module named 'cv2'")

    monkeypatch.setattr(faces, "face_count", no_opencv)
    cameo = character(api, "captain.nocv")
    assert upload(api, cameo, astronaut_video()).status_code == 202
    assert cameo_verify(str(cameo.pk)) == "needs_review"
    cameo.refresh_from_db()
    assert cameo.status_reason == "face_check_unavailable"
    assert cameo.verification["borderline"] == ["face_check_unavailable"]

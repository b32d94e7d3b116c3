"""The provenance selector (generation.selectors.provenance_of) on real signed MP4s, and the
thin view that serializes it."""

from __future__ import annotations

import hashlib
import uuid

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from generation.media import render_video
from generation.models import Video
from generation.provenance import default_signer, load_signer
from generation.selectors import Provenance, provenance_of

pytestmark = pytest.mark.django_db


def _mp4(video_id: str, signer=None) -> bytes:
    frames = np.full((8, 32, 32, 3), 60, np.uint8)
    frames[:, 10:20, 10:20] = (200, 40, 40)
    rendered = render_video(
        frames=frames,
        fps=8,
        handle="x",
        signer=signer or default_signer(),
        metadata={"video_id": video_id, "generation_id": "g"},
    )
    return rendered.mp4


def test_the_exact_bytes_of_one_of_our_videos_are_ours(user, make_video_row):
    data = b"any bytes at all"
    video = make_video_row(user)
    Video.objects.filter(pk=video.pk).update(sha256=hashlib.sha256(data).hexdigest())
    assert provenance_of(data=data) == Provenance(
        ours=True,
        video_id=video.pk,
        manifest=None,
        valid_signature=False,
        sha256=hashlib.sha256(data).hexdigest(),
    )


def test_our_signature_vouches_for_a_copy_whose_hash_changed(user, make_video_row):
    video = make_video_row(user)  # its stored hash is not this file's
    found = provenance_of(data=_mp4(str(video.pk)))
    assert (found.ours, found.video_id, found.valid_signature) == (True, video.pk, True)
    assert found.manifest == {"video_id": str(video.pk), "generation_id": "g"}


def test_another_signers_manifest_is_valid_but_not_ours(user, make_video_row, tmp_path):
    video = make_video_row(user)
    found = provenance_of(data=_mp4(str(video.pk), load_signer(dev_dir=tmp_path / "other")))
    assert (found.ours, found.video_id, found.valid_signature) == (False, None, True)
    assert found.manifest["video_id"] == str(video.pk)


@pytest.mark.parametrize("claimed", ["not-a-uuid", str(uuid.uuid4())])
def test_our_manifest_naming_no_video_of_ours_is_not_ours(claimed):
    found = provenance_of(data=_mp4(claimed))
    assert (found.ours, found.video_id, found.valid_signature) == (False, None, True)


def test_bytes_without_a_manifest_are_not_ours():
    data = b"\0\0\0\x18ftypmp42 and nothing else"
    assert provenance_of(data=data) == Provenance(
        ours=False,
        video_id=None,
        manifest=None,
        valid_signature=False,
        sha256=hashlib.sha256(data).hexdigest(),
    )


def test_the_view_serializes_the_selectors_answer(api, user, make_video_row):
    video = make_video_row(user)
    data = _mp4(str(video.pk))
    upload = SimpleUploadedFile("clip.mp4", data, content_type="video/mp4")
    response = api.post("/api/v1/provenance/verify", {"file": upload}, format="multipart")
    assert response.status_code == 200
    assert response.json() == {
        "ours": True,
        "video_id": str(video.pk),
        "manifest": {"video_id": str(video.pk), "generation_id": "g"},
        "valid_signature": True,
        "sha256": hashlib.sha256(data).hexdigest(),
    }

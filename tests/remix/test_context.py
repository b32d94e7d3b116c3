"""The remix context provider on a real rendered MP4, and the runner handing it to the engine."""

from __future__ import annotations

import numpy as np
import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from generation import runner
from generation.media import render_video
from generation.models import Generation, Video
from remix.context import parent_frames

pytestmark = pytest.mark.django_db

# One flat colour per frame, far apart, so each decoded frame says which one it is.
COLOURS = [(40 + 13 * i, 200 - 11 * i, (90 + 47 * i) % 256) for i in range(16)]


def engine_clip() -> np.ndarray:
    frames = np.zeros((16, 32, 32, 3), np.uint8)
    for i, colour in enumerate(COLOURS):
        frames[i] = colour
    return frames


@pytest.fixture(params=["9:16", "16:9", "1:1"])
def rendered_parent(request, user, make_post):
    """A post whose video is a real MP4 made the way the pipeline makes it: square engine
    frames, letterboxed by the runner, watermarked and encoded by generation.media."""
    post = make_post(user)
    rendered = render_video(
        frames=runner.letterbox(engine_clip(), request.param), fps=8, handle="al", short_side=128
    )
    name = default_storage.save(f"videos/r/{post.video_id}.mp4", ContentFile(rendered.mp4))
    Video.objects.filter(pk=post.video_id).update(content=name)
    return post


def job_for(user, remix_of_id) -> Generation:
    return Generation.objects.create(owner=user, prompt="again", seed=3, remix_of_id=remix_of_id)


def test_provider_gives_the_parent_last_frames_at_engine_size(user, rendered_parent):
    frames = parent_frames(job=job_for(user, rendered_parent.pk), height=32, width=32, count=4)
    assert frames.shape == (4, 32, 32, 3) and frames.dtype == np.uint8
    for got, colour in zip(frames, COLOURS[-4:], strict=True):
        # The bars are cropped away (no black), the centre is the frame's colour (H.264 and the
        # watermark move a few values, not the hue).
        centre = got[8:24, 8:24].reshape(-1, 3).mean(axis=0)
        assert np.abs(centre - colour).max() < 12, (centre, colour)
        # Where the bars would be, uncropped.
        for edge in (got[:2, 12:20], got[-2:, 12:20], got[12:20, :2], got[12:20, -2:]):
            assert np.abs(edge.reshape(-1, 3).mean(axis=0) - colour).max() < 16


def test_provider_gives_nothing_without_a_usable_parent(user, other, rendered_parent, make_post):
    import uuid

    assert parent_frames(job=job_for(user, None), height=32, width=32) is None
    assert parent_frames(job=job_for(user, uuid.uuid4()), height=32, width=32) is None
    unreadable = make_post(other)  # its "MP4" is a few header bytes
    assert parent_frames(job=job_for(user, unreadable.pk), height=32, width=32) is None
    from tests.conftest import client_for

    client_for(user).delete(f"/api/v1/posts/{rendered_parent.pk}")
    assert parent_frames(job=job_for(user, rendered_parent.pk), height=32, width=32) is None


class FakeEngine:
    """Only the Engine protocol (generation.engine.backends.base), as the runner reads it."""

    name, fps, height, width, max_context_frames = "fake", 8, 32, 32, 4

    def __init__(self):
        self.requests = []

    def generate(self, requests, on_progress=None):
        from generation.engine.backends import GeneratedClip

        self.requests += requests
        return [GeneratedClip(np.zeros((16, 32, 32, 3), np.uint8), 8, {}) for _ in requests]


def test_runner_conditions_a_remix_on_its_parent(user, rendered_parent, monkeypatch):
    fake = FakeEngine()
    monkeypatch.setattr(runner, "engine", lambda: fake)
    runner.sample_job(job_for(user, rendered_parent.pk), lambda done, total: None)
    runner.sample_job(job_for(user, None), lambda done, total: None)
    remix, plain = fake.requests
    assert remix.context_frames.shape == (4, 32, 32, 3)
    assert plain.context_frames is None

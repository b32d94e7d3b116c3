"""Engine conditioning for remixes: the parent clip's last frames (the `remix.context` hook).

Runs on GPU workers, called by generation.runner.sample_job when a job has `remix_of_id`.
The parent's frames come from its `engine_frames` file when it has one (exactly the frames it
was rendered from), else from its delivered MP4: decoded with PyAV, the letterbox bars the
renderer added cropped away (the renderer only pads, never crops) and each frame shrunk to the
engine's size. The helpers live in generation.frames, which extensions use too.
"""

from __future__ import annotations

import logging

import numpy as np

from feed.models import Post, PostState
from generation.frames import frames_to_engine, video_frames
from generation.models import VideoState

logger = logging.getLogger(__name__)

# frames_to_engine moved to generation.frames; still importable from here.
__all__ = ["frames_to_engine", "parent_frames"]


def parent_frames(*, job, height: int, width: int, count: int = 4) -> np.ndarray | None:
    """The last `count` frames of the post `job` remixes, uint8 [T, height, width, 3].

    None (the engine then generates without context) when the parent is gone, removed, its
    video removed or unreadable: a remix admitted before the parent went away still renders;
    publish re-checks the parent anyway.
    """
    if job.remix_of_id is None:
        return None
    post = (
        Post.objects.select_related("video")
        .filter(pk=job.remix_of_id, state=PostState.LIVE)
        .first()
    )
    if post is None or post.video.state == VideoState.REMOVED or not post.video.content:
        return None
    try:
        # At the parent's own rate: the hook is not told the engine's.
        frames = video_frames(post.video, height=height, width=width, last=count)
    except Exception:  # a missing or corrupt file must not fail the remix
        logger.warning("remix context unavailable for post %s", post.pk, exc_info=True)
        return None
    return frames if len(frames) else None

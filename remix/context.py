"""Engine conditioning for remixes: the parent clip's last frames (the `remix.context` hook).

Runs on GPU workers, called by generation.runner.sample_job when a job has `remix_of_id`.
The parent is read back from its delivered MP4 (the only copy of the frames we keep): decoded
with PyAV, the letterbox bars the renderer added are cropped away (the engine's clips are square
and the renderer only pads, never crops), and each frame is shrunk to the engine's size.
"""

from __future__ import annotations

import io
import logging

import numpy as np
from django.core.files.storage import default_storage
from PIL import Image

from feed.models import Post, PostState
from generation.models import VideoState

logger = logging.getLogger(__name__)


def _decode_last(data: bytes, count: int) -> list[np.ndarray]:
    import av

    frames: list[np.ndarray] = []
    with av.open(io.BytesIO(data)) as container:
        for frame in container.decode(container.streams.video[0]):
            frames.append(frame.to_ndarray(format="rgb24"))
            if len(frames) > count:
                frames.pop(0)
    return frames


def _unletterbox(frame: np.ndarray, *, height: int, width: int) -> np.ndarray:
    """The engine's picture inside the bars generation.runner.letterbox added.

    The renderer only scales, so the bars are the letterbox's at engine scale times one factor;
    redoing the letterbox's integer arithmetic at that scale finds them to the pixel (its
    padding is not symmetric when the difference is odd, so a centred crop would be off).
    """
    h, w = frame.shape[:2]
    if h * width > w * height:  # bars above and below
        scale = w / width
        padded = round(h / scale)
        top = (padded - height) // 2
        return frame[round(top * scale) : round((top + height) * scale)]
    if h * width < w * height:  # bars left and right
        scale = h / height
        padded = round(w / scale)
        left = (padded - width) // 2
        return frame[:, round(left * scale) : round((left + width) * scale)]
    return frame


def frames_to_engine(frames: list[np.ndarray], *, height: int, width: int) -> np.ndarray:
    """uint8 [T, height, width, 3]: each frame cropped back to the engine's aspect and resized
    with a box filter (an average, not a sample, so a 16x downscale keeps the scene's
    colours)."""
    out = []
    for frame in frames:
        frame = _unletterbox(frame, height=height, width=width)
        image = Image.fromarray(frame).resize((width, height), Image.Resampling.BOX)
        out.append(np.asarray(image, dtype=np.uint8))
    return np.stack(out) if out else np.zeros((0, height, width, 3), np.uint8)


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
        with default_storage.open(post.video.content, "rb") as fh:
            data = fh.read()
        frames = _decode_last(data, count)
    except Exception:  # a missing or corrupt file must not fail the remix
        logger.warning("remix context unavailable for post %s", post.pk, exc_info=True)
        return None
    if not frames:
        return None
    return frames_to_engine(frames, height=height, width=width)

"""Engine frames in and out of a delivered video: the letterbox the renderer adds and how to undo
it, MP4 decoding back to engine size, and the compressed copy of a clip's engine frames
(`Video.engine_frames`) that extensions continue and remixes condition on.

The engine makes small clips (riff-world: 32x32) at its own aspect; `letterbox` pads them to the
delivered aspect (never cropping the scene) and the renderer only scales after that, so
`unletterbox` finds the picture again in any delivered frame. Numpy, Pillow and PyAV only:
no torch, and nothing above `generation` (remix.context imports these).
"""

from __future__ import annotations

import io
import logging
import zipfile
from collections import deque

import numpy as np
from django.core.files.storage import default_storage
from PIL import Image

logger = logging.getLogger(__name__)

__all__ = [
    "decode_frames",
    "decode_to_engine",
    "frames_from_npz",
    "frames_to_engine",
    "frames_to_npz",
    "letterbox",
    "resample",
    "resize_frames",
    "unletterbox",
    "video_frames",
]


def letterbox(frames: np.ndarray, aspect: str) -> np.ndarray:
    """Pads engine clips (uint8 [T, H, W, C]) with black bars to the aspect "num:den" (9:16,
    16:9, 1:1, or a delivered size such as 1024:1792), centred; never crops the scene. The bars
    are whole engine pixels, so the padded clip's ratio is the nearest one to `aspect` at engine
    scale (the renderer then resizes to the exact delivered size)."""
    t, h, w, c = frames.shape
    num, den = (int(x) for x in aspect.split(":"))
    if num * h == den * w:
        return frames
    if num * h < den * w:  # the target is taller than the clip: bars above and below
        new_h, new_w = int(round(w * den / num)), w
    else:
        new_h, new_w = h, int(round(h * num / den))
    out = np.zeros((t, new_h, new_w, c), dtype=frames.dtype)
    top, left = (new_h - h) // 2, (new_w - w) // 2
    out[:, top : top + h, left : left + w] = frames
    return out


def unletterbox(frame: np.ndarray, *, height: int, width: int) -> np.ndarray:
    """The engine's picture (`height` x `width` at engine scale) inside the bars `letterbox`
    added to a delivered frame of any size and ratio.

    The renderer scales the padded clip to the delivered size, by one factor (aspect at
    RIFF_VIDEO_SHORT_SIDE) or by slightly different ones per axis (an exact "WxH" size whose
    ratio the engine's whole pixels can only approach). The axis without bars gives the scale;
    the padded length at engine scale is what that scale makes of the other axis, rounded; the
    other axis's own scale is then its delivered length over that padded length. Redoing the
    letterbox's integer arithmetic at engine scale finds the bars to the pixel (its padding is
    not symmetric when the difference is odd, so a centred crop would be off).
    """
    h, w = frame.shape[:2]
    if h * width > w * height:  # bars above and below
        padded = max(height, round(h * width / w))
        top = (padded - height) // 2
        scale = h / padded
        return frame[round(top * scale) : round((top + height) * scale)]
    if h * width < w * height:  # bars left and right
        padded = max(width, round(w * height / h))
        left = (padded - width) // 2
        scale = w / padded
        return frame[:, round(left * scale) : round((left + width) * scale)]
    return frame


def resize_frames(frames, *, height: int, width: int) -> np.ndarray:
    """uint8 [T, height, width, 3], each frame resized with a box filter (an average, not a
    sample, so a 16x downscale keeps the scene's colours)."""
    out = []
    for frame in frames:
        frame = np.asarray(frame, dtype=np.uint8)[..., :3]
        if frame.shape[:2] != (height, width):
            image = Image.fromarray(frame).resize((width, height), Image.Resampling.BOX)
            frame = np.asarray(image, dtype=np.uint8)
        out.append(frame)
    return np.stack(out) if out else np.zeros((0, height, width, 3), np.uint8)


def frames_to_engine(frames, *, height: int, width: int) -> np.ndarray:
    """uint8 [T, height, width, 3]: delivered frames cropped back to the engine's picture
    (`unletterbox`) and resized to the engine's size."""
    return resize_frames(
        [unletterbox(frame, height=height, width=width) for frame in frames],
        height=height,
        width=width,
    )


def decode_frames(data: bytes, last: int | None = None) -> list[np.ndarray]:
    """The video track of an MP4 (bytes) as RGB uint8 [H, W, 3] frames: all of them, or only
    the `last` ones."""
    import av

    frames: deque[np.ndarray] = deque(maxlen=last)
    with av.open(io.BytesIO(data)) as container:
        for frame in container.decode(container.streams.video[0]):
            frames.append(frame.to_ndarray(format="rgb24"))
    return list(frames)


def decode_to_engine(
    data: bytes, *, height: int, width: int, last: int | None = None
) -> np.ndarray:
    """`frames_to_engine(decode_frames(data, last))`, one frame at a time: a 12 s clip at
    1792x1024 would hold half a gigabyte decoded, but a few hundred KB at engine size."""
    import av

    frames: deque[np.ndarray] = deque(maxlen=last)
    with av.open(io.BytesIO(data)) as container:
        for frame in container.decode(container.streams.video[0]):
            picture = unletterbox(frame.to_ndarray(format="rgb24"), height=height, width=width)
            frames.append(resize_frames([picture], height=height, width=width)[0])
    return np.stack(frames) if frames else np.zeros((0, height, width, 3), np.uint8)


def resample(frames: np.ndarray, *, src_fps: float, fps: float) -> np.ndarray:
    """The clip played at `fps` instead of `src_fps` (nearest frame, same duration): a source
    made at another frame rate continues at the engine's."""
    if not src_fps or abs(src_fps - fps) <= 0.01 * fps or len(frames) == 0:
        return frames
    count = max(1, round(len(frames) * fps / src_fps))
    picks = np.minimum(
        np.floor(np.arange(count) * src_fps / fps + 1e-6).astype(int), len(frames) - 1
    )
    return frames[picks]


def frames_to_npz(frames: np.ndarray, fps: float) -> bytes:
    """A clip's engine frames (uint8 [T, H, W, 3]) and frame rate as a compressed .npz."""
    array = np.ascontiguousarray(frames, dtype=np.uint8)
    out = io.BytesIO()
    np.savez_compressed(out, frames=array, fps=np.float64(fps))
    return out.getvalue()


def frames_from_npz(data: bytes) -> tuple[np.ndarray, float]:
    """(frames, fps) from `frames_to_npz`'s bytes. ValueError for anything else (no pickles
    are loaded, whatever the file says)."""
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            frames, fps = npz["frames"], float(npz["fps"])
    except (OSError, EOFError, KeyError, TypeError, zipfile.BadZipFile) as exc:
        raise ValueError(f"not an engine frames file: {exc}") from exc
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3 or not len(frames):
        raise ValueError(
            f"engine frames must be uint8 [T, H, W, 3], got {frames.dtype} {frames.shape}"
        )
    return frames, fps


def _read(name: str) -> bytes:
    with default_storage.open(name, "rb") as fh:
        return fh.read()


def video_frames(
    video, *, height: int, width: int, fps: float | None = None, last: int | None = None
) -> np.ndarray:
    """A stored video's frames at engine size, uint8 [T, height, width, 3] (only the `last`
    ones if given), at `fps` (None: at the video's own rate): its `engine_frames` file when
    it has a readable one (exact, the frames it was rendered from), else its MP4 decoded and
    brought back to engine size.

    Raises FileNotFoundError when neither file is there, and ValueError (or PyAV's errors)
    when the MP4 can't be decoded. Other storage errors propagate as they are."""
    if video.engine_frames:
        try:
            frames, src_fps = frames_from_npz(_read(video.engine_frames))
        except (FileNotFoundError, ValueError):
            logger.warning("video %s: engine frames unreadable; decoding its MP4", video.pk)
        else:
            if fps:
                frames = resample(frames, src_fps=src_fps, fps=fps)
            if frames.shape[1:3] != (height, width):
                frames = resize_frames(frames, height=height, width=width)
            return frames if last is None else frames[-last:]
    if not video.content:
        raise FileNotFoundError(f"video {video.pk} has no MP4")
    src_fps = video.frame_count / video.seconds if video.seconds else fps
    keep = last
    if last is not None and fps and src_fps:
        # A source at another frame rate: enough of its own frames to make `last` at `fps`.
        keep = max(last, int(np.ceil(last * src_fps / fps)) + 1)
    frames = decode_to_engine(_read(video.content), height=height, width=width, last=keep)
    if not len(frames):
        raise ValueError(f"video {video.pk}: the MP4 has no frames")
    if fps and src_fps:
        frames = resample(frames, src_fps=src_fps, fps=fps)
    return frames if last is None else frames[-last:]

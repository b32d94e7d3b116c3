"""Checking an uploaded cameo recording before anything is stored, and analysing it after.

`probe_recording` runs in the request: it sniffs the magic bytes, opens the file with PyAV
restricted to local files and an allowlist of demuxers (no playlists, no external references),
and checks streams, duration and resolution from the container. `analyse_recording` runs in the
verification task: it decodes every frame and audio sample, so a file whose header lies about
its length or content is caught there.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass, field
from typing import Any

import av
import numpy as np
from django.conf import settings
from PIL import Image

from config.core.errors import ApiError, UnsupportedMedia

logger = logging.getLogger(__name__)

# FFmpeg demuxer names we accept; everything else (hls, concat, image2, ...) is refused.
ALLOWED_DEMUXERS = {"mov,mp4,m4a,3gp,3g2,mj2", "matroska,webm"}
MP4_BOXES = {b"ftyp", b"moov", b"mdat", b"wide", b"free", b"skip"}
EBML_MAGIC = b"\x1a\x45\xdf\xa3"
# Options that keep FFmpeg from touching anything but the bytes we give it.
SAFE_OPTIONS = {"enable_drefs": "0", "use_absolute_path": "0", "protocol_whitelist": "file,pipe"}


def _fail(code: str, message: str, status: int = 400) -> ApiError:
    return ApiError(message, code=code, status_code=status, fields={"video": [message]})


def sniff_container(head: bytes) -> str:
    if head[:4] == EBML_MAGIC:
        return "webm"
    if len(head) >= 8 and head[4:8] in MP4_BOXES:
        return "mp4"
    raise UnsupportedMedia(
        "The recording must be an MP4, MOV or WebM video.", code="unsupported_media"
    )


@dataclass
class RecordingInfo:
    container: str
    duration_s: float
    width: int
    height: int
    video_codec: str
    audio_codec: str | None
    fps: float
    size_bytes: int
    extension: str = field(default="mp4")

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def probe_recording(data: bytes, *, require_audio: bool) -> RecordingInfo:
    """Validates a recording from its headers. Raises ApiError with a stable code."""
    if not data:
        raise _fail("invalid_media", "The recording is empty.")
    if len(data) > settings.RIFF_CAMEO_MAX_BYTES:
        raise _fail("too_large", "The recording is too large.", 413)
    kind = sniff_container(data[:16])
    try:
        container = av.open(io.BytesIO(data), mode="r", options=SAFE_OPTIONS)
    except (av.error.FFmpegError, ValueError, OSError) as exc:
        raise _fail("invalid_media", f"The recording could not be read ({exc.__class__.__name__}).")
    with container:
        if container.format.name not in ALLOWED_DEMUXERS:
            raise UnsupportedMedia("This container is not accepted.", code="unsupported_media")
        videos = list(container.streams.video)
        audios = list(container.streams.audio)
        if not videos:
            raise _fail("recording_no_video", "The recording has no video track.")
        if require_audio and not audios:
            raise _fail(
                "recording_no_audio", "A person's recording must have sound: say the digits."
            )
        video = videos[0]
        width, height = video.codec_context.width, video.codec_context.height
        if not width or not height:
            raise _fail("invalid_media", "The video track has no picture size.")
        max_side = settings.RIFF_CAMEO_MAX_SIDE
        if max(width, height) > max_side:
            raise _fail(
                "recording_too_large_resolution", f"The video is larger than {max_side} px.", 413
            )
        duration = _duration_seconds(container, video)
        if duration is None:
            raise _fail("invalid_media", "The recording's duration is unknown.")
        low, high = settings.RIFF_CAMEO_MIN_SECONDS, settings.RIFF_CAMEO_MAX_SECONDS
        if duration < low:
            raise _fail("recording_too_short", f"The recording must be at least {low} seconds.")
        if duration > high:
            raise _fail("recording_too_long", f"The recording must be at most {high} seconds.")
        rate = float(video.average_rate or video.guessed_rate or 0)
        return RecordingInfo(
            container=container.format.name,
            duration_s=round(duration, 3),
            width=width,
            height=height,
            video_codec=video.codec_context.name,
            audio_codec=audios[0].codec_context.name if audios else None,
            fps=round(rate, 3),
            size_bytes=len(data),
            extension="webm" if kind == "webm" else "mp4",
        )


def _duration_seconds(container, stream) -> float | None:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / av.time_base
    return None


@dataclass
class Analysis:
    frames: int
    decoded_seconds: float
    audio_rms: float | None
    brightness_std: float
    motion: float
    reference_frames: list[bytes]
    problems: list[str]
    borderline: list[str]
    # human faces in the reference frames (the most in any one), when they were looked for
    faces: int = 0


# The problem a `character` cameo whose recording shows a real person is rejected with.
REAL_PERSON = "shows a real person's face: a person needs the verified cameo flow"


def analyse_recording(
    data: bytes, *, require_audio: bool, reference_count: int = 4, check_faces: bool = False
) -> Analysis:
    """Decodes the whole recording and measures what the automatic checks need. With
    `check_faces` (a `character` cameo: a made-up being, never a real person) the frames kept
    as references are looked at, full size, for a human face (cameos.faces); one is the
    problem REAL_PERSON."""
    problems: list[str] = []
    borderline: list[str] = []
    grays: list[np.ndarray] = []
    rgb_frames: list[Image.Image] = []
    audio_sq, audio_n = 0.0, 0
    last_pts = 0.0
    try:
        with av.open(io.BytesIO(data), mode="r", options=SAFE_OPTIONS) as container:
            video = container.streams.video[0]
            streams = [video] + list(container.streams.audio[:1])
            for frame in container.decode(*streams):
                if isinstance(frame, av.VideoFrame):
                    image = frame.to_image()
                    small = image.convert("L").resize((64, 64))
                    grays.append(np.asarray(small, dtype=np.float32))
                    rgb_frames.append(image)
                    if frame.time is not None:
                        last_pts = max(last_pts, float(frame.time))
                    if len(rgb_frames) > 4000:
                        problems.append("too_many_frames")
                        break
                else:
                    samples = frame.to_ndarray().astype(np.float64)
                    if samples.dtype.kind in "iu" or np.abs(samples).max(initial=0) > 1.5:
                        samples = samples / 32768.0
                    audio_sq += float(np.square(samples).sum())
                    audio_n += samples.size
    except (av.error.FFmpegError, ValueError, OSError, IndexError) as exc:
        problems.append(f"undecodable:{exc.__class__.__name__}")
    if not grays:
        problems.append("no_frames")
        return Analysis(0, 0.0, None, 0.0, 0.0, [], problems, borderline)

    stack = np.stack(grays)
    brightness_std = float(stack.std())
    motion = float(np.abs(np.diff(stack, axis=0)).mean()) if len(grays) > 1 else 0.0
    rms = (audio_sq / audio_n) ** 0.5 if audio_n else None
    if brightness_std < 2.0:
        problems.append("blank")
    if motion < 0.05:
        problems.append("frozen")
    elif motion < 0.5:
        borderline.append("little_motion")
    if require_audio:
        if rms is None:
            problems.append("no_audio")
        elif rms < 1e-4:
            problems.append("silent_audio")
        elif rms < 3e-3:
            borderline.append("quiet_audio")
    low, high = settings.RIFF_CAMEO_MIN_SECONDS, settings.RIFF_CAMEO_MAX_SECONDS
    if not (low - 0.5 <= last_pts + 0.1 <= high + 0.5):
        problems.append("duration_mismatch")

    picks = (
        np.linspace(0, len(rgb_frames) - 1, num=min(reference_count, len(rgb_frames)))
        .round()
        .astype(int)
    )
    references = [_reference_png(rgb_frames[i]) for i in picks]
    faces = 0
    if check_faces:
        from .faces import face_count

        try:
            faces = max(face_count(np.asarray(rgb_frames[i].convert("RGB"))) for i in picks)
        except ImportError:
            # A worker without OpenCV (the `worker` extra): a person reviews it instead, as
            # they review every character anyway, told that the check did not run.
            logger.warning("the face check is unavailable on this worker", exc_info=True)
            borderline.append("face_check_unavailable")
        if faces:
            problems.append(REAL_PERSON)
    return Analysis(
        len(grays), last_pts, rms, brightness_std, motion, references, problems, borderline, faces
    )


def _reference_png(image: Image.Image, size: int = 128) -> bytes:
    side = min(image.size)
    left, top = (image.width - side) // 2, (image.height - side) // 2
    square = image.crop((left, top, left + side, top + side)).resize(
        (size, size), Image.Resampling.LANCZOS
    )
    out = io.BytesIO()
    square.convert("RGB").save(out, format="PNG")
    return out.getvalue()

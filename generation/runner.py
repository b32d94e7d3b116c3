"""What a worker does with a claimed job: sample the clip with the engine, then render it.

The engine (torch) is imported here lazily and loaded once per worker process, so the web tier
never imports torch. `RIFF_ENGINE` names a backend in the engine registry; its options come
from `RIFF_ENGINE_OPTIONS`. Of the backend this module reads only the `Engine` protocol
(generation/engine/backends/base.py): any registered backend runs a job the same way.

A clip longer than one engine call (`Engine.max_frames`) is made segment by segment, each
continuing the frames made so far; a job can start from a video of the caller's (`extend`:
continue and stitch, `remix`: condition on its last frames) or from a reference image (the
first frame follows from it). docs/generation.md, "Long clips, sizes and sources".
"""

from __future__ import annotations

import io
import math

import av
import numpy as np
from django.conf import settings
from django.core.files.storage import default_storage
from PIL import Image

from cameos.faces import face_count
from config.core import hooks
from config.core.errors import Invalid

from .engine.backends import (
    Engine,
    EngineUnavailable,
    GenerationRequest,
    InputUnsupported,
    get_engine,
)
from .engine.backends.base import frame_size_of, max_frames_of
from .frames import letterbox, resize_frames, video_frames
from .hooks import REMIX_CONTEXT
from .models import Generation, GenerationCameo, SourceMode, VideoState
from .timing import NO_CLOCK, StageClock

# EngineUnavailable is the backends' own class, re-exported: the one a worker catches
__all__ = [
    "EngineUnavailable",
    "cameo_inputs",
    "context_frames",
    "engine",
    "job_engine",
    "letterbox",
    "render_job",
    "sample_job",
    "source_frames",
]

# A clip made in several engine calls reports its progress in thousandths of the whole.
PROGRESS_SCALE = 1000


def engine() -> Engine:
    """The process-wide engine for the current settings (the registry loads it once).

    Raises EngineUnavailable when the backend cannot be built on this worker (an unknown
    name, missing weights)."""
    return get_engine(settings.RIFF_ENGINE, **settings.RIFF_ENGINE_OPTIONS)


def job_engine(job: Generation) -> Engine:
    """The engine the job asked for (`Generation.model`, resolved at admission): blank or the
    configured RIFF_ENGINE is `engine()`; another name is an extra engine this worker has
    registered (settings.RIFF_VIDEO_MODELS), built with its factory's own defaults
    (RIFF_ENGINE_OPTIONS are the configured engine's). Raises EngineUnavailable when the
    worker has no such engine."""
    if not job.model or job.model == settings.RIFF_ENGINE:
        return engine()
    return get_engine(job.model)


def warm() -> None:
    """Loads this worker's engine (weights, text encoder) and runs it once, so the first job
    costs what every later one does. Called when a worker that consumes the `gpu` queue starts
    (config.celery); a backend without a `warm()` is only built."""
    backend = engine()
    warm_up = getattr(backend, "warm", None)
    if callable(warm_up):
        warm_up()


def _load_image(name: str) -> np.ndarray | None:
    try:
        with default_storage.open(name, "rb") as fh:
            return np.asarray(Image.open(io.BytesIO(fh.read())).convert("RGB"))
    except (OSError, ValueError):
        return None


def cameo_inputs(job: Generation) -> tuple[list[np.ndarray], str]:
    """Reference frames of every cameo in the job and the instructions text, in prompt order."""
    links = (
        GenerationCameo.objects.filter(generation=job).select_related("cameo").order_by("position")
    )
    refs: list[np.ndarray] = []
    notes: list[str] = []
    for link in links:
        cameo = link.cameo
        for name in cameo.reference_frames[:2]:
            image = _load_image(name)
            if image is not None:
                refs.append(image)
        # The version admitted with the job, not whatever the owner wrote since.
        version = cameo.instruction_versions.filter(version=link.instructions_version).first()
        if version and (version.instructions or version.restrictions):
            text = f"@{cameo.handle}: {version.instructions}"
            if version.restrictions:
                text += f" (never: {version.restrictions})"
            notes.append(text)
    return refs, " ".join(notes)


def _source_unavailable() -> Invalid:
    return Invalid(
        "The video this job starts from is no longer available.", code="source_unavailable"
    )


def source_frames(job: Generation, backend: Engine) -> np.ndarray | None:
    """The frames of the video an `extend` or `remix` job starts from, at the size the backend
    makes for the job (`frame_size_of`) and its fps: the whole clip for `extend` (the
    delivered clip begins with them), its last `max_context_frames` for `remix`. None for any
    other job (an `edit` is a fresh clip).

    Raises Invalid `source_unavailable` when that video is gone: its row deleted, removed,
    taken down, held, or neither its engine frames nor its MP4 readable."""
    if job.source_mode not in (SourceMode.EXTEND, SourceMode.REMIX):
        return None
    video = job.source_video
    if video is None or video.state not in (VideoState.DRAFT, VideoState.POSTED):
        raise _source_unavailable()
    count = int(backend.max_context_frames)
    if job.source_mode == SourceMode.REMIX and count <= 0:
        return None  # nothing to condition on; the video only had to be there
    height, width = frame_size_of(backend, aspect=job.aspect, size=job.size)
    try:
        frames = video_frames(
            video,
            height=height,
            width=width,
            fps=float(backend.fps),
            last=None if job.source_mode == SourceMode.EXTEND else count,
        )
    except (FileNotFoundError, ValueError, av.error.FFmpegError) as exc:
        # A file that is there but doesn't decode is as gone as a missing one; any other
        # storage error (a timeout) is this attempt's failure and is retried.
        raise _source_unavailable() from exc
    return frames


def reference_context(job: Generation, backend: Engine) -> np.ndarray | None:
    """The job's reference image (`input_reference`) as context frames: the image, RGB,
    resized to the backend's size and repeated `max_context_frames` times, so the clip begins
    as the continuation of a still picture of it. None without one.

    Raises Invalid `input_reference_unsupported` when the backend takes no context frames,
    `input_reference_unavailable` when the stored image can't be read, and
    `input_reference_person` when it shows a human face: a real person is only ever put in a
    video through their own verified cameo."""
    if not job.reference_image:
        return None
    count = int(backend.max_context_frames)
    if count <= 0:
        raise Invalid(
            f"The {getattr(backend, 'name', 'configured')} engine can't start a clip from a "
            "reference image.",
            code="input_reference_unsupported",
        )
    image = _load_image(job.reference_image)
    if image is None:
        raise Invalid("The reference image could not be read.", code="input_reference_unavailable")
    if face_count(image) > 0:
        raise Invalid(
            "The reference image shows a real person's face. A real person can only appear "
            "through their own verified cameo: record one and use it by its @handle.",
            code="input_reference_person",
        )
    height, width = frame_size_of(backend, aspect=job.aspect, size=job.size)
    still = resize_frames([image], height=height, width=width)
    return np.repeat(still, count, axis=0)


def context_frames(
    job: Generation, backend: Engine, *, source: np.ndarray | None = None
) -> np.ndarray | None:
    """The clean frames the job's first segment continues, at the backend's frame size for
    the job (`frame_size_of`), or None (generate without context). In order of precedence:
    the end of the job's source video (`source`, from `source_frames`), the parent clip of a
    post remix (from the `remix.context` provider: the remix app; generation never imports
    it), the job's reference image. A backend that takes no context frames gets none.

    Raises what `reference_context` raises: a reference image is checked even when a source
    takes precedence (a refused input is refused, never silently dropped)."""
    reference = reference_context(job, backend)
    count = int(backend.max_context_frames)
    if count <= 0:
        return None
    if source is not None:
        return source[-count:]
    if job.remix_of_id is not None:
        height, width = frame_size_of(backend, aspect=job.aspect, size=job.size)
        return hooks.provide(
            REMIX_CONTEXT.name,
            job=job,
            height=height,
            width=width,
            count=count,
        )
    return reference


def _segment_lengths(total: int, step: int | None) -> list[int]:
    if not step or step >= total:
        return [total]
    return [step] * (total // step) + ([total % step] if total % step else [])


def _sample_segments(
    backend: Engine,
    job: Generation,
    *,
    refs: list[np.ndarray],
    instructions: str,
    context: np.ndarray | None,
    on_progress,
) -> tuple[np.ndarray, float]:
    """The job's new frames (seconds x fps of them), in as many engine calls as the backend's
    `max_frames` needs. Segment i uses seed + i and continues the last `max_context_frames`
    frames made before it (the first one: `context`); a backend without context frames gets
    independent segments, concatenated."""
    fps = int(backend.fps)
    total = max(1, round(float(job.seconds) * fps))
    lengths = _segment_lengths(total, max_frames_of(backend))
    keep = int(backend.max_context_frames)
    tail = context if keep > 0 else None
    made: list[np.ndarray] = []
    clip_fps = float(fps)
    before = 0
    for index, length in enumerate(lengths):
        if len(lengths) == 1:
            report = on_progress
        else:

            def report(done: int, steps: int, _before=before, _length=length) -> None:
                share = (_before + _length * min(done, steps) / max(1, steps)) / total
                on_progress(round(PROGRESS_SCALE * share), PROGRESS_SCALE)

        request = GenerationRequest(
            prompt=job.prompt,
            seed=int(job.seed) + index,
            seconds=float(job.seconds) if len(lengths) == 1 else length / fps,
            frames=length,
            cameo_images=refs,
            instructions=instructions,
            context_frames=tail,
            aspect=str(job.aspect or ""),
            size=str(job.size or ""),
            continues=index > 0,
        )
        try:
            (clip,) = backend.generate([request], on_progress=report)
        except InputUnsupported as exc:
            # the backend can't do this with these inputs: the job fails with its code, once
            raise Invalid(str(exc), code=exc.code) from exc
        frames = np.asarray(clip.frames, dtype=np.uint8)[:length]
        if not len(frames):
            raise RuntimeError(f"the engine returned no frames for segment {index + 1}")
        made.append(frames)
        clip_fps = float(clip.fps)
        before += length
        if keep > 0:
            tail = np.concatenate([tail, frames])[-keep:] if tail is not None else frames[-keep:]
    return np.concatenate(made), clip_fps


def sample_job(
    job: Generation, on_progress, *, clock: StageClock = NO_CLOCK
) -> tuple[np.ndarray, float]:
    """Runs the engine for one job; returns (uint8 frames [T, h, w, 3], fps): the delivered
    clip at the engine's own frame size, before any letterbox (render_job pads and sizes it).
    For an extension that is the source's frames followed by the new ones. `on_progress`
    (done, total) goes from 0 to total once across every segment. `clock` gets the stages
    `model`, `inputs` and `sampling` (generation.timing).

    Raises Invalid (config.core.errors) with a stable code when the job's inputs can't be
    used (`source_unavailable`, `input_reference_*`): the worker fails the job without
    retrying, since another attempt would meet the same inputs."""
    with clock.stage("model"):
        backend = job_engine(job)
    with clock.stage("inputs"):
        refs, instructions = cameo_inputs(job)
        source = source_frames(job, backend)
        context = context_frames(job, backend, source=source)
    with clock.stage("sampling"):
        frames, fps = _sample_segments(
            backend,
            job,
            refs=refs,
            instructions=instructions,
            context=context,
            on_progress=on_progress,
        )
    if job.source_mode == SourceMode.EXTEND and source is not None:
        frames = np.concatenate([source, frames])
    return frames, fps


def delivered_size(job: Generation) -> tuple[int, int] | None:
    """(width, height) of the job's `size` ("WxH"), or None when it asks for none.

    Raises Invalid `invalid_size` for anything but two even positive numbers up to 4096
    (admission only lets the documented sizes through; this is the worker not trusting a row
    written some other way)."""
    if not job.size:
        return None
    width, sep, height = job.size.lower().partition("x")
    if (
        sep
        and width.isdigit()
        and height.isdigit()
        and all(0 < int(n) <= 4096 and int(n) % 2 == 0 for n in (width, height))
    ):
        return int(width), int(height)
    raise Invalid(f"The size {job.size[:20]!r} can't be rendered.", code="invalid_size")


def render_job(
    job: Generation, *, video_id, frames: np.ndarray, fps: float, clock: StageClock = NO_CLOCK
):
    """Letterbox, watermark, encode, sign: the finished files (bytes) and their facts.
    `frames` are sample_job's (engine size); with a job `size` they are padded to exactly its
    ratio and delivered at exactly that size, otherwise padded to the job's aspect and scaled
    to RIFF_VIDEO_SHORT_SIDE. The engine frames themselves are kept beside the MP4. `clock`
    gets the stages `frames`, `encode`, `sign` and `previews`."""
    from .media import render_video
    from .provenance import default_signer

    size = delivered_size(job)
    if size is not None:
        divisor = math.gcd(*size)
        padded = letterbox(frames, f"{size[0] // divisor}:{size[1] // divisor}")
    else:
        padded = letterbox(frames, job.aspect)
    return render_video(
        frames=padded,
        fps=fps,
        handle=job.owner.username,
        signer=default_signer(),
        metadata={
            "video_id": str(video_id),
            "generation_id": str(job.pk),
            "model": job.model or settings.RIFF_ENGINE,
            "creator": job.owner.username,
        },
        short_side=settings.RIFF_VIDEO_SHORT_SIDE,
        size=size,
        engine_frames=frames,
        clock=clock,
    )

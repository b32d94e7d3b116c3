"""What a worker does with a claimed job: sample the clip with the engine, then render it.

The engine (torch) is imported here lazily and loaded once per worker process, so the web tier
never imports torch. `RIFF_ENGINE` names a backend in the engine registry; its options come
from `RIFF_ENGINE_OPTIONS`. Of the backend this module reads only the `Engine` protocol
(generation/engine/backends/base.py): any registered backend runs a job the same way.
"""

from __future__ import annotations

import io

import numpy as np
from django.conf import settings
from django.core.files.storage import default_storage
from PIL import Image

from config.core import hooks

from .engine.backends import Engine, EngineUnavailable, GenerationRequest, get_engine
from .hooks import REMIX_CONTEXT
from .models import Generation, GenerationCameo
from .timing import NO_CLOCK, StageClock

# EngineUnavailable is the backends' own class, re-exported: the one a worker catches
__all__ = [
    "EngineUnavailable",
    "cameo_inputs",
    "context_frames",
    "engine",
    "letterbox",
    "render_job",
    "sample_job",
]


def engine() -> Engine:
    """The process-wide engine for the current settings (the registry loads it once).

    Raises EngineUnavailable when the backend cannot be built on this worker (an unknown
    name, missing weights)."""
    return get_engine(settings.RIFF_ENGINE, **settings.RIFF_ENGINE_OPTIONS)


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


def letterbox(frames: np.ndarray, aspect: str) -> np.ndarray:
    """Pads square engine clips to the requested aspect (never crops the scene)."""
    t, h, w, c = frames.shape
    num, den = (int(x) for x in aspect.split(":"))
    if num * h == den * w:
        return frames
    if num < den:  # portrait: taller
        new_h, new_w = int(round(w * den / num)), w
    else:
        new_h, new_w = h, int(round(h * num / den))
    out = np.zeros((t, new_h, new_w, c), dtype=frames.dtype)
    top, left = (new_h - h) // 2, (new_w - w) // 2
    out[:, top : top + h, left : left + w] = frames
    return out


def context_frames(job: Generation, backend: Engine) -> np.ndarray | None:
    """The parent clip's frames for a remix, from the `remix.context` provider (the remix app;
    generation never imports it), at the backend's frame size. None: generate without context
    (not a remix, no provider, or a backend that takes no context frames)."""
    if job.remix_of_id is None or backend.max_context_frames <= 0:
        return None
    return hooks.provide(
        REMIX_CONTEXT.name,
        job=job,
        height=int(backend.height),
        width=int(backend.width),
        count=int(backend.max_context_frames),
    )


def sample_job(
    job: Generation, on_progress, *, clock: StageClock = NO_CLOCK
) -> tuple[np.ndarray, float]:
    """Runs the engine for one job; returns (uint8 frames [T, H, W, 3], fps). `clock` gets the
    stages `model`, `inputs` and `sampling` (generation.timing)."""
    with clock.stage("model"):
        backend = engine()
    with clock.stage("inputs"):
        refs, instructions = cameo_inputs(job)
        request = GenerationRequest(
            prompt=job.prompt,
            seed=int(job.seed),
            seconds=float(job.seconds),
            cameo_images=refs,
            instructions=instructions,
            context_frames=context_frames(job, backend),
        )
    with clock.stage("sampling"):
        clips = backend.generate(
            [request], on_progress=lambda done, total: on_progress(done, total)
        )
    clip = clips[0]
    return letterbox(np.asarray(clip.frames, dtype=np.uint8), job.aspect), float(clip.fps)


def render_job(
    job: Generation, *, video_id, frames: np.ndarray, fps: float, clock: StageClock = NO_CLOCK
):
    """Watermark, encode, sign: the finished files (bytes) and their facts. `clock` gets the
    stages `frames`, `encode`, `sign` and `previews`."""
    from .media import render_video
    from .provenance import default_signer

    return render_video(
        frames=frames,
        fps=fps,
        handle=job.owner.username,
        signer=default_signer(),
        metadata={
            "video_id": str(video_id),
            "generation_id": str(job.pk),
            "model": settings.RIFF_ENGINE,
            "creator": job.owner.username,
        },
        short_side=settings.RIFF_VIDEO_SHORT_SIDE,
        clock=clock,
    )

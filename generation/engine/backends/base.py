"""What a backend is: the `Engine` protocol, the request it takes, the clip it returns, and the
one error that says it cannot run here.

torch-free on purpose: the web tier and the Celery task module import `EngineUnavailable` and
`GenerationRequest` from here without loading a model. docs/engine-backends.md walks through
writing a backend against this file.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

__all__ = [
    "Engine",
    "EngineUnavailable",
    "GeneratedClip",
    "InputUnsupported",
    "GenerationRequest",
    "ProgressFn",
    "frame_size_of",
    "max_frames_of",
]


class EngineUnavailable(RuntimeError):
    """The configured engine cannot be built on this machine: an unknown registry name, a
    missing weights file, a device that is not there. The worker fails the job with
    `engine_unavailable` instead of retrying it, since another attempt on the same worker
    would meet the same machine."""


class InputUnsupported(ValueError):
    """The request asks for something this backend cannot do with these inputs: a cameo for a
    model that takes no image, a reference image and a clip to continue at once, a size it
    can't make. `code` is the stable error code the job fails with (no retry: another attempt
    would meet the same inputs); the message says why, in words a user can act on."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


@dataclass
class GenerationRequest:
    prompt: str
    seed: int = 0
    seconds: float | None = None
    frames: int | None = None  # wins over seconds
    cameo_images: list[Any] = field(default_factory=list)  # uint8 [H, W, 3] arrays / PIL
    instructions: str = ""
    # clean frames the clip continues, uint8 [T, H, W, 3]: a remix parent's or source video's
    # last frames, the previous segment's, or a reference image repeated
    context_frames: np.ndarray | None = None
    # the delivered shape the job asked for: an aspect ("9:16", "16:9", "1:1") and, from the
    # Videos API, an exact size ("720x1280", width x height) or "". A backend that can make
    # frames of that shape should (the worker letterboxes whatever comes back to it anyway);
    # riff-world makes its one trained size.
    aspect: str = ""
    size: str = ""
    # True when `context_frames` are this job's own previous segment (a seam inside one long
    # clip), not another video: whatever the clip shows (its cameos) is already in them
    continues: bool = False


@dataclass
class GeneratedClip:
    frames: np.ndarray  # uint8 [T, H, W, 3]
    fps: int
    metadata: dict

    @property
    def seconds(self) -> float:
        return len(self.frames) / self.fps


# on_progress(done_steps, total_steps): called as the work advances. Whatever it raises ends
# the generation and reaches the caller unchanged; that is how the worker cancels a job.
ProgressFn = Callable[[int, int], Any]


@runtime_checkable
class Engine(Protocol):
    """Everything the rest of Riff reads of a backend.

    The worker (generation.runner) reads these members and nothing else: `height` and
    `width` size the context frames it hands over (a remix parent's, a source video's, a
    reference image) and `max_context_frames` says how many (0: the backend takes none);
    clips come back at `fps`, and the runner letterboxes them to the job's aspect or size.

    One more member is optional, so it is not declared here (a protocol member would be
    required by `isinstance`): `max_frames: int`, the most frames one `generate` call makes
    for a request. A job longer than that is made in segments of at most `max_frames`, each
    a request of its own (seed + i) whose `context_frames` are the last `max_context_frames`
    frames made before it, concatenated. Without it (or with 0) the backend is asked for the
    whole clip at once. Read it with `max_frames_of`.

    Another is `frame_size(aspect: str, size: str) -> (height, width)`: the frames it makes for
    a job of that shape (a backend that follows the job's aspect); without it, every job's
    frames are `height` x `width`. Read it with `frame_size_of`."""

    @property
    def name(self) -> str: ...

    @property
    def fps(self) -> int: ...

    @property
    def height(self) -> int: ...

    @property
    def width(self) -> int: ...

    @property
    def max_context_frames(self) -> int: ...

    def generate(
        self, requests: list[GenerationRequest], on_progress: ProgressFn | None = None
    ) -> list[GeneratedClip]:
        """One clip per request, in order. `on_progress` runs as the work advances; an
        exception it raises stops the work and propagates."""
        ...


def frame_size_of(engine: Engine, *, aspect: str = "", size: str = "") -> tuple[int, int]:
    """(height, width) of the frames `engine` makes for a job of this `aspect` / `size`: its
    optional `frame_size(aspect=..., size=...)` member (see `Engine`), else its one
    `height` x `width`. The worker hands over context frames (a remix parent's, a source
    video's, a reference image) at this size, so a clip and what it continues match."""
    choose = getattr(engine, "frame_size", None)
    if callable(choose):
        height, width = choose(aspect=aspect, size=size)
        return int(height), int(width)
    return int(engine.height), int(engine.width)


def max_frames_of(engine: Engine) -> int | None:
    """The optional `max_frames` member of `engine` (see `Engine`): the most frames one call
    makes, or None when it doesn't say (or says 0): then it is asked for everything at once."""
    value = getattr(engine, "max_frames", None)
    return int(value) if value else None

"""Hooks generation declares for upper layers (config.core.hooks; implementations in RIFF_HOOKS)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from accounts.models import User
from cameos.models import Cameo
from config.core import hooks

from .models import Generation, Video

if TYPE_CHECKING:
    from .services.admission import AdmissionRequest


class VideoRemoved(Protocol):
    """The video left every list (its author, a cameo owner, moderation): take down what shows
    it. Inside the removing transaction, the video row locked and already `removed`."""

    def __call__(self, *, video: Video) -> None: ...


class VideoTakenDown(Protocol):
    """Moderation hid the video, reversibly (files kept): hide what shows it, so that it is
    gone from every list a removed one is gone from. Inside the takedown transaction, the video
    row locked and already `taken_down` (`state_before_takedown` says where it was). Must be
    idempotent: a post takedown hides its post first, then comes here through its video."""

    def __call__(self, *, video: Video) -> None: ...


class VideoRestored(Protocol):
    """A takedown was reversed (appeal approved, timed takedown over): bring back what the
    takedown hid. Inside the restoring transaction, the video row locked and back in its
    previous state (draft or posted). Must be idempotent."""

    def __call__(self, *, video: Video) -> None: ...


class GenerationAdmitted(Protocol):
    """A job was admitted: its row is written, inside the admitting transaction (do what must
    wait for the commit in `transaction.on_commit`)."""

    def __call__(self, *, generation: Generation) -> None: ...


class LikenessSource(Protocol):
    """Likenesses the request brings in without naming them (a remix parent's cameos).
    Admission checks the caller's consent for each. May refuse (ApiError) the request."""

    def __call__(self, *, user: User, request: AdmissionRequest) -> list[Cameo]: ...


class AdmissionPromptCheck(Protocol):
    """A policy check of the prompt alone, before any cameo is resolved (the prompt blocklist):
    raise an ApiError to refuse; change nothing. Its refusals come before cameo refusals."""

    def __call__(self, *, user: User, prompt: str, request: AdmissionRequest) -> None: ...


class AdmissionCheck(Protocol):
    """A policy check at admission: raise an ApiError to refuse; change nothing."""

    def __call__(
        self, *, user: User, prompt: str, cameos: list[Cameo], request: AdmissionRequest
    ) -> None: ...


class AdmissionAdjust(Protocol):
    """May rewrite fields of the request before the job row is written (e.g. drop a serve_id
    that was not served to the caller). Never refuses."""

    def __call__(self, *, user: User, request: AdmissionRequest) -> None: ...


class AdmissionPrefetch(Protocol):
    """Statements admission's first round trip also carries, so a check that needs a cheap
    read (the freshness stamp of a process-local cache) costs no round trip of its own. Each
    `(key, sql)` is a SELECT without parameters that returns one row; it runs right after the
    caller's user row is locked, and its row (a tuple, or None) is left in `request.memo[key]`
    for the checks that follow (docs/generation.md, "Admission's round trips"). `user`: the
    caller."""

    def __call__(self, *, user: User) -> list[tuple[str, str]]: ...


class OutputCheck(Protocol):
    """On the worker, after sampling and before the video exists: look at the generated frames
    (uint8 [T, H, W, 3]) and return what is wrong with them, as sentences for a moderator; []
    when nothing is. Any problem from any check holds the video for review (state `held`). An
    exception counts as a problem too: an unchecked video is never delivered."""

    def __call__(self, *, job: Generation, frames: np.ndarray) -> list[str]: ...


class VideoHeld(Protocol):
    """A video is `held`: open it for review. Inside the worker's finishing transaction (the
    row just created `held`; `problems` are the output checks' answers), or inside the
    restoring transaction when a takedown of a held video is reversed (it is held again)."""

    def __call__(self, *, video: Video, problems: list[str]) -> None: ...


class RemixContext(Protocol):
    """Provider: the parent clip's last `count` frames for a remix job, uint8 [T, H, W, 3], or
    None to generate from the prompt alone. Runs on the worker."""

    def __call__(
        self, *, job: Generation, height: int, width: int, count: int
    ) -> np.ndarray | None: ...


class RemixSubtree(Protocol):
    """Provider: ids of the video's post and every remix below it (any state), so a cameo
    owner's removal reaches the remixes carrying the likeness in."""

    def __call__(self, *, video_id: Any) -> list[Any]: ...


class RemixParentVideo(Protocol):
    """Provider: the id of the video the remix parent post `remix_of_id` shows (any state), or
    None. A remix shows its parent's frames, so it uses the parent's IP too (rights claims)."""

    def __call__(self, *, remix_of_id: Any) -> Any: ...


class VideoLivePost(Protocol):
    """Provider: the id of the live post that shows video `video_id`, or None. A Videos API
    remix of a posted video is a remix of that post (lineage, revenue)."""

    def __call__(self, *, video_id: Any) -> Any: ...


VIDEO_REMOVED = hooks.define("video.removed", VideoRemoved)
VIDEO_TAKEN_DOWN = hooks.define("video.taken_down", VideoTakenDown)
VIDEO_RESTORED = hooks.define("video.restored", VideoRestored)
GENERATION_ADMITTED = hooks.define("generation.admitted", GenerationAdmitted)
LIKENESS_SOURCES = hooks.define("admission.likeness_sources", LikenessSource)
ADMISSION_PROMPT_CHECK = hooks.define("admission.prompt_check", AdmissionPromptCheck)
ADMISSION_CHECK = hooks.define("admission.check", AdmissionCheck)
ADMISSION_ADJUST = hooks.define("admission.adjust", AdmissionAdjust)
ADMISSION_PREFETCH = hooks.define("admission.prefetch", AdmissionPrefetch)
OUTPUT_CHECK = hooks.define("video.output_check", OutputCheck)
VIDEO_HELD = hooks.define("video.held", VideoHeld)
REMIX_CONTEXT = hooks.define("remix.context", RemixContext, provider=True)
REMIX_SUBTREE = hooks.define("remix.subtree", RemixSubtree, provider=True)
REMIX_PARENT_VIDEO = hooks.define("remix.parent_video", RemixParentVideo, provider=True)
VIDEO_LIVE_POST = hooks.define("video.live_post", VideoLivePost, provider=True)

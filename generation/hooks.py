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


class LikenessSource(Protocol):
    """Likenesses the request brings in without naming them (a remix parent's cameos).
    Admission checks the caller's consent for each. May refuse (ApiError) the request."""

    def __call__(self, *, user: User, request: AdmissionRequest) -> list[Cameo]: ...


class AdmissionCheck(Protocol):
    """A policy check at admission: raise an ApiError to refuse; change nothing."""

    def __call__(
        self, *, user: User, prompt: str, cameos: list[Cameo], request: AdmissionRequest
    ) -> None: ...


class AdmissionAdjust(Protocol):
    """May rewrite fields of the request before the job row is written (e.g. drop a serve_id
    that was not served to the caller). Never refuses."""

    def __call__(self, *, user: User, request: AdmissionRequest) -> None: ...


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


VIDEO_REMOVED = hooks.define("video.removed", VideoRemoved)
LIKENESS_SOURCES = hooks.define("admission.likeness_sources", LikenessSource)
ADMISSION_CHECK = hooks.define("admission.check", AdmissionCheck)
ADMISSION_ADJUST = hooks.define("admission.adjust", AdmissionAdjust)
REMIX_CONTEXT = hooks.define("remix.context", RemixContext, provider=True)
REMIX_SUBTREE = hooks.define("remix.subtree", RemixSubtree, provider=True)
REMIX_PARENT_VIDEO = hooks.define("remix.parent_video", RemixParentVideo, provider=True)

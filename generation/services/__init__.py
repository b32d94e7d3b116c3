"""Writes for generation: admission, the job state machine, videos and appearances."""

from .admission import generation_admit
from .jobs import (
    TRANSITIONS,
    generation_cancel,
    generation_transition,
    on_cameo_consent_withdrawn,
    on_cameo_revoked,
)
from .videos import appearance_remove, video_remove

__all__ = [
    "TRANSITIONS",
    "appearance_remove",
    "generation_admit",
    "generation_cancel",
    "generation_transition",
    "on_cameo_consent_withdrawn",
    "on_cameo_revoked",
    "video_remove",
]

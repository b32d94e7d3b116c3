"""Writes for generation: admission, the job state machine, videos and appearances."""

from .admission import generation_admit
from .consent import (
    appearance_remove,
    on_account_deleted,
    on_cameo_consent_withdrawn,
    on_cameo_revoked,
)
from .jobs import JOB_STATES, generation_cancel, generation_transition
from .videos import video_remove

__all__ = [
    "JOB_STATES",
    "appearance_remove",
    "generation_admit",
    "generation_cancel",
    "generation_transition",
    "on_account_deleted",
    "on_cameo_consent_withdrawn",
    "on_cameo_revoked",
    "video_remove",
]

"""Moderation's implementations of generation's safety hooks (generation/hooks.py), named in
RIFF_HOOKS (config/settings.py). Thin: the rules are in moderation.safety.

- `admission.prompt_check` -> `prompt_safety`: the prompt blocklist, and protected figures the
  caller could never bring in, before any cameo is resolved (so content-policy refusals come
  before cameo refusals, as they always have);
- `admission.check` -> `admission_safety`: public-figure protection once the video's cameos
  are known (the person's own cameo makes it allowed), prompt and cameo instructions;
- `video.output_check` -> `output_hash_blocklist`: the default output check (frame dHash
  against the blocked hashes);
- `video.held` -> `on_video_held`: a system report in the `output_check` queue;
- `admission.prefetch` -> `admission_prefetch`: the policy's freshness stamp, read in
  admission's first round trip instead of a query of its own.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from accounts.models import User
from cameos.models import Cameo
from generation.models import Generation, Video

from . import safety


def admission_prefetch(*, user: User) -> list[tuple[str, str]]:
    """`admission.prefetch`: the policy's freshness stamp rides admission's first round trip."""
    return [safety.policy_stamp_statement()]


def prompt_safety(*, user: User, prompt: str, request: Any) -> None:
    """`admission.prompt_check`: 403 `content_policy` for a blocked prompt."""
    # One policy snapshot serves both hooks of this admission (`request.memo`).
    snapshot = safety.policy_snapshot(getattr(request, "memo", None))
    refusal = safety.prompt_refusal(
        user=user, prompt=prompt, snapshot=snapshot
    ) or safety.figure_refusal(user=user, prompt=prompt, cameos=None, snapshot=snapshot)
    if refusal is not None:
        raise refusal


def admission_safety(*, user: User, prompt: str, cameos: list[Cameo], request: Any) -> None:
    """`admission.check`: 403 `content_policy` for a protected figure named in the prompt or a
    cameo's instructions when the video does not use that figure's own cameo."""
    snapshot = safety.policy_snapshot(getattr(request, "memo", None))
    refusal = safety.figure_refusal(user=user, prompt=prompt, cameos=cameos, snapshot=snapshot)
    if refusal is not None:
        raise refusal


def output_hash_blocklist(*, job: Generation, frames: np.ndarray) -> list[str]:
    """`video.output_check`: the perceptual-hash blocklist (docs/moderation-safety.md)."""
    return safety.output_problems(frames=frames)


def on_video_held(*, video: Video, problems: list[str]) -> None:
    """`video.held`: opens the held video for review in the `output_check` queue."""
    safety.held_report_create(video=video, problems=problems)

"""Hooks generation admission calls (named in settings.RIFF_ADMISSION_CHECKS), so that
`POST /generations` with `remix_of` is held to the same rule as `POST /posts/{id}/remix`."""

from __future__ import annotations

from typing import Any

from accounts.models import User

from .selectors import remix_parent


def remix_allowed(*, user: User, prompt: str, cameos: list, request: Any) -> None:
    """Refuses a remix of a post the caller may not remix (404 / 403 `remix_not_allowed`).

    `request` is generation.services.admission.AdmissionRequest. Runs inside the admission
    transaction, before the job row exists, so a refusal leaves nothing behind.
    """
    if request.remix_of_id is None:
        return
    remix_parent(user=user, post_id=request.remix_of_id, field="remix_of")

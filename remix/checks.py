"""What generation admission asks the remix layer (named in settings), so that `POST
/generations` with `remix_of` and `POST /posts/{id}/remix` are held to one rule."""

from __future__ import annotations

from typing import Any

from accounts.models import User
from cameos.models import Cameo

from .selectors import remix_parent


def remix_parent_cameos(*, user: User, request: Any) -> list[Cameo]:
    """`admission.likeness_sources` hook: the cameos a remix carries in from its parent.

    A remix continues the parent's clip from its last frames, so every likeness in the parent
    can appear in the child: the child inherits the parent's appearances (which already include
    the grandparent's, and so on up the chain), and admission checks the caller's consent for
    each. The parent itself is checked first (404 / 403 `remix_not_allowed`), so a post the
    caller may not remix reveals nothing about its cameos.

    `request` is generation.services.admission.AdmissionRequest. Runs inside the admission
    transaction, before the job row exists, so a refusal leaves nothing behind.
    """
    if request.remix_of_id is None:
        return []
    parent = remix_parent(user=user, post_id=request.remix_of_id, field="remix_of")
    return list(
        Cameo.objects.filter(appearances__video_id=parent.video_id)
        .select_related("owner")
        .order_by("appearances__created_at", "pk")
    )

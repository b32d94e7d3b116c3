"""Reads for cameos. Who may *see* a cameo lives here; who may *use* one lives in consent.py."""

from __future__ import annotations

from django.db.models import Q, QuerySet

from accounts.models import Block
from config.core.errors import Forbidden, NotFound

from .consent import usable_cameos
from .models import AccessRequest, Audience, Cameo, CameoGrant, CameoStatus


def cameos_owned_by(*, user) -> QuerySet[Cameo]:
    return Cameo.objects.filter(owner=user).select_related("owner")


def cameos_usable_by(*, user) -> QuerySet[Cameo]:
    return usable_cameos(user)


def cameo_visible_to(*, user, cameo_id) -> Cameo:
    """The cameo if `user` may look at it: the owner always; others when it is active, not
    only_me, and no block stands between them (so they can ask for access). Else 404."""
    cameo = Cameo.objects.select_related("owner").filter(pk=cameo_id).first()
    if cameo is None:
        raise NotFound("No such cameo.")
    if cameo.owner_id == user.pk:
        return cameo
    blocked = Block.objects.filter(
        Q(blocker_id=cameo.owner_id, blocked_id=user.pk)
        | Q(blocker_id=user.pk, blocked_id=cameo.owner_id)
    ).exists()
    if cameo.status != CameoStatus.ACTIVE or cameo.audience == Audience.ONLY_ME or blocked:
        raise NotFound("No such cameo.")
    if not cameo.owner.is_active:
        raise NotFound("No such cameo.")
    return cameo


def cameo_owned(*, user, cameo_id) -> Cameo:
    """For owner-only endpoints: 404 when invisible, 403 when visible but not yours."""
    cameo = cameo_visible_to(user=user, cameo_id=cameo_id)
    if cameo.owner_id != user.pk:
        raise Forbidden("Only the cameo's owner can do this.")
    return cameo


def grants_of(*, cameo: Cameo) -> QuerySet[CameoGrant]:
    return CameoGrant.objects.filter(cameo=cameo).select_related("user")


def access_requests_of(*, cameo: Cameo) -> QuerySet[AccessRequest]:
    return AccessRequest.objects.filter(cameo=cameo).select_related("requester")


def cameos_by_handles(*, handles: list[str]) -> QuerySet[Cameo]:
    from accounts.names import name_key

    return Cameo.objects.filter(handle_key__in=[name_key(h) for h in handles]).select_related(
        "owner"
    )

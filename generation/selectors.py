"""Reads for generation. The video visibility rule lives here and only here."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass

from django.db.models import Exists, OuterRef, Q, QuerySet

from accounts.selectors import blocked_user_ids
from cameos.models import Cameo
from config.core.errors import NotFound
from rights.catalogue import member_holder_ids
from rights.models import Claim
from rights.selectors import video_claims

from .models import Appearance, Generation, Video, VideoState


def generations_of(*, user) -> QuerySet[Generation]:
    return (
        Generation.objects.filter(owner=user)
        .select_related("video", "video__owner")
        .prefetch_related("cameo_links")
    )


def generation_of(*, user, generation_id) -> Generation:
    generation = generations_of(user=user).filter(pk=generation_id).first()
    if generation is None:
        raise NotFound("No such generation.")
    return generation


# States in which a video answers 404 to everyone, its owner included: removed for good,
# taken down by moderation (reversibly), or held by the output check until moderation releases
# it. Its owner still finds a taken-down or held one (state `taken_down` / `held`) in their
# generations list, and its cameo owners in their appearances list; staff see it in the
# moderation console.
HIDDEN_STATES = (VideoState.REMOVED, VideoState.TAKEN_DOWN, VideoState.HELD)


def videos_visible_to(user) -> QuerySet[Video]:
    """The owner, owners of cameos in the video, or anyone once posted unless a block stands
    between them and its owner (the same rule as the post's). Removed, taken down or held:
    nobody.

    A cameo owner keeps seeing a video with their likeness even across a block: they must be
    able to find it to remove it.
    """
    in_my_cameo = Exists(Appearance.objects.filter(video=OuterRef("pk"), cameo__owner_id=user.pk))
    posted = Q(state=VideoState.POSTED) & ~Q(owner_id__in=blocked_user_ids(user))
    return (
        Video.objects.exclude(state__in=HIDDEN_STATES)
        .filter(Q(owner_id=user.pk) | posted | in_my_cameo)
        .select_related("owner")
    )


def video_visible(*, user, video_id) -> Video:
    video = videos_visible_to(user).filter(pk=video_id).first()
    if video is None:
        raise NotFound("No such video.")
    return video


def video_claims_visible(*, user, video_id) -> list[Claim]:
    """API.md: the video's owner and its cameo owners see every claim on it (removed videos
    too: claims outlive them), members of a claiming holder see that holder's; anyone else
    gets a 404, whether or not the video exists."""
    claims = list(video_claims(video_id=video_id).order_by("created_at", "id"))
    involved = Video.objects.filter(pk=video_id).filter(
        Q(owner_id=user.pk) | Q(appearances__cameo__owner_id=user.pk)
    )
    if not involved.exists():
        mine = member_holder_ids(user)
        claims = [c for c in claims if c.holder_id in mine]
        if not claims:
            raise NotFound("No such video.")
    return claims


def video_unremoved(*, video_id) -> Video:
    """For a signed content URL: the signature stands for the visibility check made when the
    URL was handed out; removal, takedown and a hold still win."""
    video = Video.objects.exclude(state__in=HIDDEN_STATES).filter(pk=video_id).first()
    if video is None:
        raise NotFound("No such video.")
    return video


def drafts_of(*, user) -> QuerySet[Video]:
    """Own drafts that may be published: a taken-down draft or a held video is not one (it
    shows, state `taken_down` / `held`, in the generations list until moderation decides)."""
    return Video.objects.filter(owner=user, state=VideoState.DRAFT).select_related("owner")


def appearances_of(*, cameo: Cameo) -> QuerySet[Appearance]:
    """Every video showing the cameo, other people's drafts included. Taken-down and held
    videos stay listed (state `taken_down` / `held`, the content itself 404s): neither is
    final, so the cameo owner must still be able to remove the video for good."""
    return (
        Appearance.objects.filter(cameo=cameo)
        .exclude(video__state=VideoState.REMOVED)
        .select_related("video", "video__owner")
    )


@dataclass(frozen=True)
class Provenance:
    """What a file says about where it came from (`POST /provenance/verify`)."""

    ours: bool
    video_id: uuid.UUID | None
    manifest: dict | None  # our `riff.generation` assertion, when the file has a manifest
    valid_signature: bool
    sha256: str


def provenance_of(*, data: bytes) -> Provenance:
    """Was this file made here? Ours when the bytes are exactly a video we made (its SHA-256),
    or when our own signature vouches for it (a re-muxed copy keeps its manifest but changes
    the hash). Any bytes are fine: a file with no or a broken manifest is simply not ours."""
    from .provenance import verify_media  # c2pa loads on first use, not with the web tier

    digest = hashlib.sha256(data).hexdigest()
    result = verify_media(data, mime="video/mp4")
    video_id = Video.objects.filter(sha256=digest).values_list("pk", flat=True).first()
    if video_id is None and result.valid and result.trusted and result.riff:
        claimed = _uuid_or_none(result.riff.get("video_id"))
        if claimed is not None:
            video_id = Video.objects.filter(pk=claimed).values_list("pk", flat=True).first()
    return Provenance(
        ours=video_id is not None,
        video_id=video_id,
        manifest=result.riff if result.has_manifest else None,
        valid_signature=bool(result.valid),
        sha256=digest,
    )


def _uuid_or_none(value: object) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None

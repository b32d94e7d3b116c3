"""What withdrawn consent does to generation: jobs stop and videos with the likeness go.

A likeness reaches a video by id, by @handle, or carried in from a remix parent; every one of
them is an Appearance row of the video and a GenerationCameo row of its job (admission and the
worker write both). So consent is withdrawn through those rows alone, whatever path put the
likeness there:

- the owner revokes the cameo (or deletes the account): every job using it fails and every video
  showing it is removed, drafts included, files and all;
- the owner removes one video: it goes, and so does every remix below it that carries the cameo
  in from it (and the jobs still making such remixes);
- one user loses access (grant withdrawn, block): that user's jobs using it fail.
"""

from __future__ import annotations

from django.db import transaction

from accounts.services import notification_create
from config.core import hooks
from config.core.errors import Conflict

from ..hooks import REMIX_SUBTREE
from ..models import Generation, GenerationStatus, Video, VideoState
from .jobs import generation_transition
from .videos import video_remove

G = GenerationStatus


def _fail_jobs(qs, reason_code: str, message: str) -> int:
    """Consent withdrawn: the job fails (the user did not cancel it); a running worker notices
    at its next heartbeat and stops without producing a video."""
    count = 0
    for job in qs.filter(status__in=[G.QUEUED, G.RUNNING]).distinct():
        try:
            generation_transition(
                generation=job, to=G.FAILED, error_code=reason_code, error_message=message
            )
            count += 1
        except Conflict:
            continue
    return count


def _remove_showing(*, videos, cameo, reason: str, actor=None) -> int:
    """Removes each video (locks, post hooks, files after commit); tells its maker why."""
    count = 0
    for video in videos.exclude(state=VideoState.REMOVED).select_related("owner").distinct():
        video_remove(video=video, reason=reason)
        count += 1
        if video.owner_id != cameo.owner_id and video.owner_id != getattr(actor, "pk", None):
            notification_create(
                recipient=video.owner,
                kind="video.removed",
                actor=actor,
                data={"video_id": str(video.pk), "reason": reason},
            )
    return count


def on_cameo_revoked(*, cameo) -> None:
    """`cameo.revoked` hook: jobs that use the cameo stop; every video showing it goes."""
    _fail_jobs(
        Generation.objects.filter(cameo_links__cameo=cameo),
        "cameo_consent_revoked",
        "A cameo in this video was withdrawn by its owner.",
    )
    _remove_showing(
        videos=Video.objects.filter(appearances__cameo=cameo),
        cameo=cameo,
        reason=f"@{cameo.handle} was withdrawn by its owner",
    )


def on_cameo_consent_withdrawn(*, cameo, user) -> None:
    """`cameo.consent_withdrawn` hook: one user lost access (grant removed, block)."""
    _fail_jobs(
        Generation.objects.filter(cameo_links__cameo=cameo, owner=user),
        "cameo_consent_revoked",
        "You may no longer use a cameo in this video.",
    )


def on_account_deleted(*, user) -> None:
    """`account.deleted` hook: the user's own videos are removed with their files before
    the rows cascade away (the cameos hook, run before this one, removed other people's videos
    showing the user's likeness)."""
    _fail_jobs(Generation.objects.filter(owner=user), "account_deleted", "The account was deleted.")
    for video in Video.objects.filter(owner=user).exclude(state=VideoState.REMOVED):
        video_remove(video=video, reason="account deleted")


def remix_subtree_post_ids(video: Video) -> list:
    """Posts at and below the post of `video` in its remix tree, from the `remix.subtree`
    provider the remix layer registers; generation never imports it."""
    return list(hooks.provide(REMIX_SUBTREE.name, video_id=video.pk) or [])


@transaction.atomic
def appearance_remove(*, cameo, video: Video, actor) -> Video:
    """The cameo's owner takes a video with their likeness down, whoever made it, and with it
    every remix below it that carries the likeness in (drafts and jobs in flight included)."""
    post_ids = remix_subtree_post_ids(video)
    _remove_showing(
        videos=Video.objects.filter(pk=video.pk),
        cameo=cameo,
        reason=f"removed by the owner of @{cameo.handle}",
        actor=actor,
    )
    if post_ids:
        _fail_jobs(
            Generation.objects.filter(remix_of_id__in=post_ids, cameo_links__cameo=cameo),
            "cameo_consent_revoked",
            "The post you remixed was removed by the owner of a cameo in it.",
        )
        _remove_showing(
            videos=Video.objects.filter(
                generation__remix_of_id__in=post_ids, appearances__cameo=cameo
            ),
            cameo=cameo,
            reason=f"removed by the owner of @{cameo.handle}",
            actor=actor,
        )
    video.refresh_from_db()
    return video

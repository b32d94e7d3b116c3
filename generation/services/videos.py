"""Videos: stored by the worker (as a draft, or `held` when the output check found a problem),
removed by one function (video_remove) whoever asks, taken down and restored by moderation
(video_takedown / video_restore, reversible, files kept), released from a hold by moderation
(video_release). `video_spritesheet` builds the sprite sheet of a video rendered before they
existed."""

from __future__ import annotations

import uuid

from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction
from django.utils import timezone

from accounts.services import notification_create
from config.core import hooks
from config.core.errors import Conflict, NotFound
from config.core.states import StateMachine

from ..hooks import VIDEO_HELD, VIDEO_REMOVED, VIDEO_RESTORED, VIDEO_TAKEN_DOWN
from ..models import Appearance, Generation, GenerationCameo, Video, VideoState


def store_rendered(*, generation: Generation, rendered) -> dict[str, str]:
    """Writes the MP4, poster, preview, sprite sheet and engine frames (the last two when the
    render has them) through the storage API; returns their names by `Video` field."""
    stamp = uuid.uuid4().hex[:10]
    base = f"videos/{generation.owner_id}/{generation.pk}/{stamp}"
    names: dict[str, str] = {}
    try:
        names["content"] = default_storage.save(f"{base}.mp4", ContentFile(rendered.mp4))
        names["poster"] = default_storage.save(f"{base}-poster.jpg", ContentFile(rendered.poster))
        names["preview"] = default_storage.save(
            f"{base}-preview.webp", ContentFile(rendered.preview)
        )
        if getattr(rendered, "spritesheet", b""):
            names["spritesheet"] = default_storage.save(
                f"{base}-sprites.jpg", ContentFile(rendered.spritesheet)
            )
        if getattr(rendered, "engine_frames", b""):
            names["engine_frames"] = default_storage.save(
                f"{base}-frames.npz", ContentFile(rendered.engine_frames)
            )
    except BaseException:
        delete_files(names.values())
        raise
    return names


def video_files(video: Video) -> list[str]:
    """Every stored file of a video (blank names left out): whoever deletes a video's files
    deletes these."""
    names = (video.content, video.poster, video.preview, video.spritesheet, video.engine_frames)
    return [name for name in names if name]


def delete_files(names) -> None:
    for name in names:
        if name:
            default_storage.delete(name)


def video_spritesheet(*, video: Video) -> str:
    """The storage name of the video's sprite sheet (JPEG, generation.media.spritesheet_jpeg).
    A video rendered before sprite sheets existed gets one now: built from its MP4, stored
    beside it (`...-sprites.jpg`) and saved on the row, once: of two concurrent callers the
    second finds the first's under the row lock, deletes its own copy and returns the first's.

    Precondition: the caller has decided the requester may see this video. Raises NotFound
    (`not_found`) when the video was removed meanwhile or its MP4 can't be read."""
    if video.spritesheet:
        return video.spritesheet
    import av

    from ..media import spritesheet_from_mp4

    gone = NotFound("This video's files are not available.", code="not_found")
    if not video.content:
        raise gone
    try:
        with default_storage.open(video.content, "rb") as fh:
            sheet = spritesheet_from_mp4(fh.read())
    except (FileNotFoundError, ValueError, av.error.FFmpegError) as exc:
        raise gone from exc
    base = video.content.removesuffix(".mp4")
    name = default_storage.save(f"{base}-sprites.jpg", ContentFile(sheet))
    try:
        with transaction.atomic():
            locked = Video.objects.select_for_update().get(pk=video.pk)
            if not locked.spritesheet and locked.state != VideoState.REMOVED:
                locked.spritesheet = name
                locked.save(update_fields=["spritesheet"])
    except BaseException:
        delete_files([name])
        raise
    if locked.spritesheet != name:
        delete_files([name])
    if not locked.spritesheet:
        raise gone
    video.spritesheet = locked.spritesheet
    return locked.spritesheet


def video_create(
    *,
    generation: Generation,
    video_id: uuid.UUID,
    rendered,
    files: dict[str, str],
    problems: list[str] | None = None,
) -> Video:
    """Inside the worker's finishing transaction: the draft, its appearances, notifications.

    With `problems` (what the output check found) the video is created `held` instead of a
    draft, and the `video.held` hook opens it for review (moderation's queue)."""
    video = Video.objects.create(
        id=video_id,
        owner_id=generation.owner_id,
        generation=generation,
        state=VideoState.HELD if problems else VideoState.DRAFT,
        seconds=rendered.duration_s,
        width=rendered.width,
        height=rendered.height,
        frame_count=rendered.frame_count,
        sha256=rendered.sha256,
        **files,
    )
    links = GenerationCameo.objects.filter(generation=generation).select_related("cameo__owner")
    Appearance.objects.bulk_create(
        Appearance(video=video, cameo=link.cameo, instructions_version=link.instructions_version)
        for link in links
    )
    for link in links:
        if link.cameo.owner_id != generation.owner_id:
            notification_create(
                recipient=link.cameo.owner,
                kind="cameo.appearance",
                actor=generation.owner,
                data={
                    "cameo_id": str(link.cameo_id),
                    "video_id": str(video.pk),
                    "state": video.state,
                },
            )
    if problems:
        hooks.run(VIDEO_HELD.name, video=video, problems=list(problems))
    return video


V = VideoState
VIDEO_STATES = StateMachine(
    "video",
    {
        V.DRAFT: {V.POSTED, V.TAKEN_DOWN, V.REMOVED},
        V.POSTED: {V.TAKEN_DOWN, V.REMOVED},
        # Held by the output check: released to draft by moderation (video_release), or taken
        # down, or removed (consent withdrawn, account deleted). Never posted while held.
        V.HELD: {V.DRAFT, V.TAKEN_DOWN, V.REMOVED},
        # Back where it was (`state_before_takedown`), or removed for good (consent withdrawn,
        # account deleted): a takedown never shields a video from its cameo owners.
        V.TAKEN_DOWN: {V.DRAFT, V.POSTED, V.HELD, V.REMOVED},
        V.REMOVED: set(),
    },
    field="state",
)


@transaction.atomic
def video_transition(*, video: Video, to: str, reason: str = "") -> Video:
    """The only way a video's state changes (publishing, takedown, restore, removal). Locks the
    row. Leaving `taken_down` other than for `removed` goes back to `state_before_takedown`
    only (409 `invalid_transition` otherwise): a takedown can't turn a draft into a post, nor
    release a held video."""
    locked = Video.objects.select_for_update().get(pk=video.pk)
    VIDEO_STATES.check(locked.state, to)
    fields = ["state"]
    if to == V.TAKEN_DOWN:
        locked.state_before_takedown = locked.state
        locked.takedown_reason = reason[:200]
        locked.taken_down_at = timezone.now()
        fields += ["state_before_takedown", "takedown_reason", "taken_down_at"]
    elif locked.state == V.TAKEN_DOWN and to != V.REMOVED:
        if to != locked.state_before_takedown:
            raise Conflict(
                f"This video was taken down from {locked.state_before_takedown or 'unknown'}; "
                f"it can only go back there, not to {to}.",
                code="invalid_transition",
            )
        locked.state_before_takedown = ""
        locked.takedown_reason = ""
        locked.taken_down_at = None
        fields += ["state_before_takedown", "takedown_reason", "taken_down_at"]
    locked.state = to
    if to == V.REMOVED:
        locked.removed_reason = reason[:200]
        fields.append("removed_reason")
    locked.save(update_fields=fields)
    video.state = locked.state
    return locked


@transaction.atomic
def video_remove(*, video: Video, reason: str) -> Video:
    """Removes a video everywhere (draft, post, or taken down) for good; files are deleted
    after commit."""
    locked = Video.objects.select_for_update().get(pk=video.pk)
    if locked.state == VideoState.REMOVED:
        return locked
    locked = video_transition(video=locked, to=V.REMOVED, reason=reason)
    hooks.run(VIDEO_REMOVED.name, video=locked)
    names = video_files(locked)
    transaction.on_commit(lambda: delete_files(names))
    return locked


@transaction.atomic
def video_takedown(*, video: Video, reason: str) -> Video:
    """Moderation hides a video (draft or posted), reversibly: it answers 404 to everyone
    (`/videos/{id}`, its content, signed URLs included), and its post, if any, leaves every
    list through the `video.taken_down` hook. The files are kept for `video_restore`.

    Idempotent: a video already taken down is returned as it is (the first reason stands).
    A removed video is gone for good: 409 `invalid_transition`.
    """
    locked = Video.objects.select_for_update().get(pk=video.pk)
    if locked.state != V.TAKEN_DOWN:
        locked = video_transition(video=locked, to=V.TAKEN_DOWN, reason=reason)
        hooks.run(VIDEO_TAKEN_DOWN.name, video=locked)
    video.state = locked.state
    return locked


@transaction.atomic
def video_restore(*, video: Video) -> Video:
    """Reverses `video_takedown`: the video goes back to the state it was taken down from
    (draft, posted or held) and, through the `video.restored` hook, its post comes back.

    A video taken down while held goes back to `held`, never straight to a draft: nobody
    released it, so it is opened for review again (the `video.held` hook), whatever reversed
    the takedown (an approved appeal, a timed takedown running out). Fail closed.

    Idempotent: a draft, posted or held video is returned as it is. A removed video (consent
    withdrawn, account deleted while it was down) can't come back: 409 `invalid_transition`.
    """
    locked = Video.objects.select_for_update().get(pk=video.pk)
    if locked.state == V.REMOVED:
        raise Conflict(
            "This video was removed for good and can't be restored.", code="invalid_transition"
        )
    if locked.state == V.TAKEN_DOWN:
        locked = video_transition(video=locked, to=locked.state_before_takedown)
        hooks.run(VIDEO_RESTORED.name, video=locked)
        if locked.state == V.HELD:
            hooks.run(
                VIDEO_HELD.name,
                video=locked,
                problems=["A takedown of this held video was reversed; it is still held."],
            )
    video.state = locked.state
    return locked


@transaction.atomic
def video_release(*, video: Video) -> Video:
    """Moderation looked at a video the output check held and found nothing wrong: `held` ->
    `draft`, so its owner can see and publish it. Called by moderation (held_release), which
    records the decision.

    Idempotent: a draft is returned as it is. Any other state (posted, taken down, removed)
    is 409 `invalid_transition`: only a hold is released here.
    """
    locked = Video.objects.select_for_update().get(pk=video.pk)
    if locked.state != V.DRAFT:
        if locked.state != V.HELD:
            raise Conflict(
                f"Only a held video can be released; this one is {locked.state}.",
                code="invalid_transition",
            )
        locked = video_transition(video=locked, to=V.DRAFT)
    video.state = locked.state
    return locked

"""Videos: stored by the worker, removed by one function (video_remove) whoever asks."""

from __future__ import annotations

import uuid

from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction

from accounts.services import notification_create
from config.core import hooks
from config.core.states import StateMachine

from ..hooks import VIDEO_REMOVED
from ..models import Appearance, Generation, GenerationCameo, Video, VideoState


def store_rendered(*, generation: Generation, rendered) -> dict[str, str]:
    """Writes the MP4, poster and preview through the storage API; returns their names."""
    stamp = uuid.uuid4().hex[:10]
    base = f"videos/{generation.owner_id}/{generation.pk}/{stamp}"
    names: dict[str, str] = {}
    try:
        names["content"] = default_storage.save(f"{base}.mp4", ContentFile(rendered.mp4))
        names["poster"] = default_storage.save(f"{base}-poster.jpg", ContentFile(rendered.poster))
        names["preview"] = default_storage.save(
            f"{base}-preview.webp", ContentFile(rendered.preview)
        )
    except BaseException:
        delete_files(names.values())
        raise
    return names


def delete_files(names) -> None:
    for name in names:
        if name:
            default_storage.delete(name)


def video_create(
    *, generation: Generation, video_id: uuid.UUID, rendered, files: dict[str, str]
) -> Video:
    """Inside the worker's finishing transaction: the draft, its appearances, notifications."""
    video = Video.objects.create(
        id=video_id,
        owner_id=generation.owner_id,
        generation=generation,
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
    return video


V = VideoState
VIDEO_STATES = StateMachine(
    "video",
    {V.DRAFT: {V.POSTED, V.REMOVED}, V.POSTED: {V.REMOVED}, V.REMOVED: set()},
    field="state",
)


@transaction.atomic
def video_transition(*, video: Video, to: str, reason: str = "") -> Video:
    """The only way a video's state changes (publishing, removal). Locks the row."""
    locked = Video.objects.select_for_update().get(pk=video.pk)
    VIDEO_STATES.check(locked.state, to)
    locked.state = to
    fields = ["state"]
    if to == V.REMOVED:
        locked.removed_reason = reason[:200]
        fields.append("removed_reason")
    locked.save(update_fields=fields)
    video.state = locked.state
    return locked


@transaction.atomic
def video_remove(*, video: Video, reason: str) -> Video:
    """Removes a video everywhere (draft or post); files are deleted after commit."""
    locked = Video.objects.select_for_update().get(pk=video.pk)
    if locked.state == VideoState.REMOVED:
        return locked
    locked = video_transition(video=locked, to=V.REMOVED, reason=reason)
    hooks.run(VIDEO_REMOVED.name, video=locked)
    names = [locked.content, locked.poster, locked.preview]
    transaction.on_commit(lambda: delete_files(names))
    return locked

"""Request parsing and response objects of the Videos API, in OpenAI's shapes.

The official client sends multipart forms even without a file, nesting objects as
`video[id]` / `input_reference[image_url]`; JSON bodies send the same as objects. Both are
brought to one plain dict here before validation.
"""

from __future__ import annotations

import re
from typing import Any

from django.conf import settings
from rest_framework import serializers

from config.core.fields import InputSerializer, StrictCharField

from ..media import output_size
from ..models import Generation, GenerationStatus, SourceMode, Video, VideoState

G = GenerationStatus
SECONDS = ("4", "8", "12")
# An extension's own length: the closed API took these.
EXTENSION_SECONDS = ("4", "8", "12", "16", "20")
SIZES = ("720x1280", "1280x720", "1024x1792", "1792x1024")
DEFAULT_SECONDS, DEFAULT_SIZE = "4", "720x1280"
_NESTED = re.compile(r"^([a-z_]+)\[([a-z_]+)\]$")


def flat_body(data: Any) -> dict[str, Any]:
    """A request body (JSON dict or multipart QueryDict) as one dict: `a[b]` form keys become
    `{"a": {"b": value}}`, a repeated form key keeps its last value, files stay files."""
    if not hasattr(data, "keys"):
        raise serializers.ValidationError({"non_field_errors": ["Send a JSON object or a form."]})
    if not hasattr(data, "getlist"):
        return dict(data)
    out: dict[str, Any] = {}
    for key in data:
        value = data.get(key)
        match = _NESTED.match(key)
        if match:
            parent = out.setdefault(match[1], {})
            if not isinstance(parent, dict):
                raise serializers.ValidationError({match[1]: ["Send a value or an object."]})
            parent[match[2]] = value
        elif key in out:
            raise serializers.ValidationError({key: ["Send a value or an object, not both."]})
        else:
            out[key] = value
    return out


def _not_blank(value: str) -> str:
    value = value.strip()
    if not value:
        raise serializers.ValidationError("Must not be blank.")
    return value


class _Prompted(InputSerializer):
    prompt = StrictCharField(max_length=1000, min_length=1)

    def validate_prompt(self, value: str) -> str:
        return _not_blank(value)


class VideoCreateIn(_Prompted):
    model = StrictCharField(max_length=64, required=False)
    seconds = serializers.ChoiceField(choices=SECONDS, required=False)
    size = serializers.ChoiceField(choices=SIZES, required=False)
    # A file, or {"image_url": "data:image/png;base64,..."} (services.reference_bytes).
    input_reference = serializers.JSONField(required=False)

    def to_internal_value(self, data):
        # The upload is not JSON: take it aside, validate the rest.
        upload = (
            data.get("input_reference") if hasattr(data.get("input_reference"), "read") else None
        )
        if upload is not None:
            data = {k: v for k, v in data.items() if k != "input_reference"}
        value = super().to_internal_value(data)
        if upload is not None:
            value["input_reference"] = upload
        return value


class VideoRemixIn(_Prompted):
    pass


class SourceRef(serializers.Field):
    """`video`: `{"id": "<video id>"}` (an uploaded file is refused by the view)."""

    default_error_messages = {"shape": 'Send {{"id": "<video id>"}}.'}

    def to_internal_value(self, data):
        if not isinstance(data, dict) or set(data) != {"id"} or not isinstance(data["id"], str):
            self.fail("shape")
        if not data["id"] or len(data["id"]) > 100:
            self.fail("shape")
        return data["id"]


class VideoExtendIn(_Prompted):
    seconds = serializers.ChoiceField(choices=EXTENSION_SECONDS)
    video = SourceRef()


class VideoEditIn(_Prompted):
    video = SourceRef()


class CharacterIn(InputSerializer):
    name = StrictCharField(max_length=60, min_length=1)

    def validate_name(self, value: str) -> str:
        return _not_blank(value)


# ------------------------------------------------------------------------------- responses


def _ts(value) -> int | None:
    return int(value.timestamp()) if value is not None else None


def video_of(generation: Generation) -> Video | None:
    """The generation's video when it has one (loaded with `select_related("video")`)."""
    try:
        return generation.video
    except Video.DoesNotExist:
        return None


_HIDDEN = {
    VideoState.HELD: (
        "held_for_review",
        "The video is held for review by moderation; it is delivered if it is released.",
    ),
    VideoState.TAKEN_DOWN: ("taken_down", "The video was taken down by moderation."),
    VideoState.REMOVED: ("video_removed", "The video was removed."),
}


def status_and_error(generation: Generation, video: Video | None) -> tuple[str, dict | None]:
    """OpenAI's four states. A cancelled job is `failed` with the error code `cancelled`; a
    rendered video nobody may watch (held for review, taken down, removed) is `failed` too,
    with a code that says which, and turns `completed` again if moderation releases it."""
    if generation.status == G.QUEUED:
        return "queued", None
    if generation.status == G.RUNNING:
        return "in_progress", None
    if generation.status == G.SUCCEEDED:
        if video is not None and video.state in _HIDDEN:
            code, message = _HIDDEN[video.state]
            if video.state == VideoState.REMOVED and video.removed_reason:
                message = f"The video was removed: {video.removed_reason}."
            return "failed", {"code": code, "message": message}
        return "completed", None
    code = generation.error_code or str(generation.status)
    message = generation.error_message or f"The video {generation.status}."
    return "failed", {"code": code, "message": message}


def size_of(generation: Generation, video: Video | None) -> str:
    if generation.size:
        return generation.size
    if video is not None:
        return f"{video.width}x{video.height}"
    # Made in the app (an aspect, the default short side): what the renderer will deliver.
    num, den = (int(x) for x in generation.aspect.split(":"))
    height, width = output_size(den * 1000, num * 1000, settings.RIFF_VIDEO_SHORT_SIDE)
    return f"{width}x{height}"


def seconds_of(generation: Generation, video: Video | None) -> str:
    """The clip's length; an extension's is the stitched whole (source + extension)."""
    if video is not None:
        return str(round(video.seconds))
    seconds = generation.seconds
    source = generation.source_video
    if generation.source_mode == SourceMode.EXTEND and source is not None:
        seconds += round(source.seconds)
    return str(seconds)


def video_object(generation: Generation) -> dict[str, Any]:
    """The `Video` object. `generation` comes with `video` and `source_video` loaded."""
    video = video_of(generation)
    state, error = status_and_error(generation, video)
    source = generation.source_video
    remixed_from = (
        str(source.generation_id)
        if source is not None and generation.source_mode == SourceMode.REMIX
        else None
    )
    return {
        "id": str(generation.pk),
        "object": "video",
        "model": generation.model or settings.RIFF_ENGINE,
        "status": state,
        "progress": 100 if state == "completed" else int(generation.progress * 100),
        "created_at": _ts(generation.created_at),
        "completed_at": _ts(generation.completed_at),
        "expires_at": None,
        "prompt": generation.prompt,
        "remixed_from_video_id": remixed_from,
        "seconds": seconds_of(generation, video),
        "size": size_of(generation, video),
        "error": error,
    }


def character_object(cameo) -> dict[str, Any]:
    return {
        "id": str(cameo.pk),
        "object": "character",
        "created_at": _ts(cameo.created_at),
        "name": cameo.display_name,
        # What a prompt writes to use it: `@handle`.
        "handle": cameo.handle,
        # A character is usable once review approves it (`active`).
        "status": cameo.status,
    }

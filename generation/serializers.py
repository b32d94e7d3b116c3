from __future__ import annotations

from urllib.parse import urlencode

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from accounts.serializers import UserBriefOut
from config.core.fields import (
    InputSerializer,
    OutputModelSerializer,
    StrictCharField,
    StrictUUIDField,
    iso_datetime,
)
from config.core.media import signed_query

from .models import Aspect, Generation, Video


class GenerationIn(InputSerializer):
    prompt = StrictCharField(max_length=1000, min_length=1)
    cameos = serializers.ListField(child=StrictUUIDField(), required=False, max_length=10)
    remix_of = StrictUUIDField(required=False, allow_null=True)
    seconds = serializers.IntegerField(required=False, min_value=1, max_value=10)
    aspect = serializers.ChoiceField(choices=Aspect.choices, required=False)
    seed = serializers.IntegerField(required=False, min_value=0, max_value=2**31 - 1)
    serve_id = StrictCharField(max_length=64, required=False, allow_blank=True)

    def validate_prompt(self, value: str) -> str:
        value = value.strip()
        if not value:
            raise serializers.ValidationError("Must not be blank.")
        return value


def media_path(video_id, variant: str) -> str:
    """What a signed content URL authorises: one variant of one video."""
    return f"videos/{video_id}/{variant}"


def _content_url(request, video: Video, variant: str) -> str:
    """The content endpoint, signed: it works with the bearer token, or without one until the
    signature expires (video players often can't send headers). Removal still wins."""
    query = urlencode({"variant": variant, **signed_query(media_path(video.pk, variant))})
    path = f"/api/v1/videos/{video.pk}/content?{query}"
    return request.build_absolute_uri(path) if request is not None else path


class VideoOut(OutputModelSerializer):
    owner = UserBriefOut()
    generation = serializers.UUIDField(source="generation_id")
    content_url = serializers.SerializerMethodField()
    poster_url = serializers.SerializerMethodField()
    preview_url = serializers.SerializerMethodField()

    class Meta:
        model = Video
        fields = [
            "id",
            "owner",
            "generation",
            "state",
            "seconds",
            "width",
            "height",
            "frame_count",
            "content_url",
            "poster_url",
            "preview_url",
            "sha256",
            "created_at",
        ]

    def get_content_url(self, obj: Video) -> str:
        return _content_url(self.context.get("request"), obj, "video")

    def get_poster_url(self, obj: Video) -> str:
        return _content_url(self.context.get("request"), obj, "poster")

    def get_preview_url(self, obj: Video) -> str:
        return _content_url(self.context.get("request"), obj, "preview")


class ErrorOut(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()


class GenerationOut(OutputModelSerializer):
    cameos = serializers.SerializerMethodField()
    remix_of = serializers.UUIDField(source="remix_of_id", allow_null=True)
    error = serializers.SerializerMethodField()
    video = serializers.SerializerMethodField()

    class Meta:
        model = Generation
        fields = [
            "id",
            "status",
            "progress",
            "prompt",
            "cameos",
            "remix_of",
            "seconds",
            "aspect",
            "seed",
            "error",
            "video",
            "created_at",
            "completed_at",
        ]

    @extend_schema_field(serializers.ListField(child=serializers.UUIDField()))
    def get_cameos(self, obj: Generation) -> list[str]:
        return _cameo_ids(obj)

    @extend_schema_field(ErrorOut(allow_null=True))
    def get_error(self, obj: Generation):
        return _error(obj)

    @extend_schema_field(VideoOut(allow_null=True))
    def get_video(self, obj: Generation):
        return _video(obj, self.context.get("request"))


def _cameo_ids(generation: Generation) -> list[str]:
    links = sorted(generation.cameo_links.all(), key=lambda link: link.position)
    return [str(link.cameo_id) for link in links]


def _error(generation: Generation) -> dict | None:
    if not generation.error_code:
        return None
    return {"code": generation.error_code, "message": generation.error_message}


def _video(generation: Generation, request) -> dict | None:
    """The finished video, unless it was removed."""
    video = getattr(generation, "video", None) if generation.status == "succeeded" else None
    if video is None or video.state == "removed":
        return None
    return VideoOut(video, context={"request": request}).data


def generation_out(generation: Generation, request) -> dict:
    """`GenerationOut` of `generation`, built directly: admission answers with it (and clients
    poll `GET /generations/{id}`), and the serializer's per-object field set-up cost more than
    the rest of the response. A test holds the two to the same output, state by state."""
    return {
        "id": str(generation.pk),
        "status": str(generation.status),
        "progress": float(generation.progress),
        "prompt": generation.prompt,
        "cameos": _cameo_ids(generation),
        "remix_of": str(generation.remix_of_id) if generation.remix_of_id is not None else None,
        "seconds": generation.seconds,
        "aspect": str(generation.aspect),
        "seed": generation.seed,
        "error": _error(generation),
        "video": _video(generation, request),
        "created_at": iso_datetime(generation.created_at),
        "completed_at": iso_datetime(generation.completed_at),
    }


class AppearanceOut(serializers.Serializer):
    video = VideoOut()
    instructions_version = serializers.IntegerField()
    created_at = serializers.DateTimeField()


class ProvenanceIn(InputSerializer):
    file = serializers.FileField()


class ProvenanceOut(serializers.Serializer):
    ours = serializers.BooleanField()
    video_id = serializers.UUIDField(allow_null=True)
    manifest = serializers.DictField(allow_null=True)
    valid_signature = serializers.BooleanField()
    sha256 = serializers.CharField()

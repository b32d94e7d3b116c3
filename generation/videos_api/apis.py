"""The `/v1/` views: parse OpenAI's request shape, call one service, answer OpenAI's shape.

API keys only (accounts.authentication.ApiKeyAuthentication), each key with its own rate
(accounts.throttles.ApiKeyThrottle); the owner's daily quota applies through admission. Left
out of Riff's own OpenAPI schema: the contract here is OpenAI's published one
(docs/videos-api.md says what differs).
"""

from __future__ import annotations

from django.conf import settings
from django.core.files.storage import default_storage
from django.db.models import Q
from drf_spectacular.utils import extend_schema
from rest_framework.parsers import MultiPartParser
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.authentication import ApiKeyAuthentication
from accounts.throttles import ApiKeyThrottle
from config.core.errors import Conflict, Invalid, NotFound
from config.core.files import FileStream
from config.core.parsers import JSONParser
from config.core.throttles import UserThrottle

from ..models import GenerationStatus
from ..services.videos import video_spritesheet
from . import services, shapes

ACTIVE = (GenerationStatus.QUEUED, GenerationStatus.RUNNING)
MAX_LIMIT = 100


class V1View(APIView):
    authentication_classes = [ApiKeyAuthentication]
    permission_classes = [IsAuthenticated]
    # Each key its own rate; the owner's requests over all their keys stay under the user rate.
    throttle_classes = [ApiKeyThrottle, UserThrottle]
    parser_classes = [JSONParser, MultiPartParser]


def video_response(generation, status: int = 200) -> Response:
    response = Response(shapes.video_object(generation), status=status)
    if generation.status in ACTIVE:
        # The official client's poll helper waits this long between retrieves.
        response["openai-poll-after-ms"] = str(settings.RIFF_VIDEOS_POLL_AFTER_MS)
    return response


def _validated(serializer_class, data):
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


def _source_body(request: Request) -> dict:
    """The body of an extension or an edit, with `video` as the id it references. The official
    client can only send `video` as a file, so a file is taken when it is one of the caller's
    own Riff videos, byte for byte as downloaded (found by its SHA-256): then Riff knows whose
    likenesses it shows. Any other footage is refused, since it could show anyone."""
    body = shapes.flat_body(request.data)
    upload = body.get("video")
    if hasattr(upload, "read"):
        body["video"] = {"id": services.source_id_of_upload(user=request.user, upload=upload)}
    return body


@extend_schema(exclude=True)
class VideosApi(V1View):
    def get(self, request: Request) -> Response:
        query = request.query_params
        order = query.get("order", "desc")
        if order not in ("asc", "desc"):
            raise Invalid("order must be asc or desc.", fields={"order": ["asc or desc."]})
        raw_limit = query.get("limit", "20")
        if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= MAX_LIMIT:
            raise Invalid(
                f"limit must be an integer from 1 to {MAX_LIMIT}.", fields={"limit": ["Invalid."]}
            )
        limit = int(raw_limit)
        rows = services.api_generations(user=request.user)
        after = query.get("after")
        if after is not None:
            try:
                anchor = services.api_generation(user=request.user, video_id=after)
            except NotFound:
                raise Invalid(
                    "after must be the id of one of your videos.", fields={"after": ["Unknown."]}
                ) from None
            # Keyset on (created_at, id): stable while new videos arrive.
            at, pk = anchor.created_at, anchor.pk
            if order == "desc":
                rows = rows.filter(Q(created_at__lt=at) | Q(created_at=at, pk__lt=pk))
            else:
                rows = rows.filter(Q(created_at__gt=at) | Q(created_at=at, pk__gt=pk))
        ordering = ("-created_at", "-id") if order == "desc" else ("created_at", "id")
        page = list(rows.order_by(*ordering)[: limit + 1])
        data = [shapes.video_object(g) for g in page[:limit]]
        return Response(
            {
                "object": "list",
                "data": data,
                "first_id": data[0]["id"] if data else None,
                "last_id": data[-1]["id"] if data else None,
                "has_more": len(page) > limit,
            }
        )

    def post(self, request: Request) -> Response:
        data = _validated(shapes.VideoCreateIn, shapes.flat_body(request.data))
        return video_response(services.video_api_create(user=request.user, data=data))


@extend_schema(exclude=True)
class VideoApi(V1View):
    def get(self, request: Request, video_id: str) -> Response:
        return video_response(services.api_generation(user=request.user, video_id=video_id))

    def delete(self, request: Request, video_id: str) -> Response:
        deleted = services.video_api_delete(user=request.user, video_id=video_id)
        return Response({"id": deleted, "object": "video.deleted", "deleted": True})


# variant -> (the Video field, the media type)
VARIANTS = {
    "video": ("content", "video/mp4"),
    "thumbnail": ("poster", "image/jpeg"),
    "spritesheet": ("spritesheet", "image/jpeg"),
}


@extend_schema(exclude=True)
class VideoContentApi(V1View):
    def perform_content_negotiation(self, request, force=False):
        # The bytes bypass renderers: the official client asks with `Accept:
        # application/binary`, players with `video/mp4`; neither may be a 406.
        return super().perform_content_negotiation(request, force=True)

    def get(self, request: Request, video_id: str):
        variant = request.query_params.get("variant", "video")
        if variant not in VARIANTS:
            raise Invalid(
                "variant must be video, thumbnail or spritesheet.",
                fields={"variant": ["Unknown variant."]},
            )
        generation = services.api_generation(user=request.user, video_id=video_id)
        video = shapes.video_of(generation)
        state, _error = shapes.status_and_error(generation, video)
        if state in ("queued", "in_progress"):
            raise Conflict("The video is not completed yet.", code="video_not_ready")
        if state != "completed" or video is None:
            raise NotFound("This video has no content to download.", code="not_found")
        field, content_type = VARIANTS[variant]
        name = video_spritesheet(video=video) if variant == "spritesheet" else getattr(video, field)
        if not name or not default_storage.exists(name):
            raise NotFound("No such file.", code="not_found")
        response = FileStream(default_storage.open(name, "rb"), content_type=content_type)
        response["Cache-Control"] = "private, max-age=3600"
        response["X-Content-Type-Options"] = "nosniff"
        return response


@extend_schema(exclude=True)
class VideoRemixApi(V1View):
    def post(self, request: Request, video_id: str) -> Response:
        data = _validated(shapes.VideoRemixIn, shapes.flat_body(request.data))
        return video_response(
            services.video_api_remix(user=request.user, video_id=video_id, prompt=data["prompt"])
        )


@extend_schema(exclude=True)
class VideoCancelApi(V1View):
    def post(self, request: Request, video_id: str) -> Response:
        return video_response(services.video_api_cancel(user=request.user, video_id=video_id))


@extend_schema(exclude=True)
class ExtensionsApi(V1View):
    def post(self, request: Request) -> Response:
        data = _validated(shapes.VideoExtendIn, _source_body(request))
        generation = services.video_api_extend(
            user=request.user,
            video_id=data["video"],
            prompt=data["prompt"],
            seconds=int(data["seconds"]),
        )
        return video_response(generation)


@extend_schema(exclude=True)
class EditsApi(V1View):
    def post(self, request: Request) -> Response:
        data = _validated(shapes.VideoEditIn, _source_body(request))
        return video_response(
            services.video_api_edit(
                user=request.user, video_id=data["video"], prompt=data["prompt"]
            )
        )


@extend_schema(exclude=True)
class CharactersApi(V1View):
    parser_classes = [MultiPartParser]

    def post(self, request: Request) -> Response:
        body = shapes.flat_body(request.data)
        upload = body.pop("video", None)
        data = _validated(shapes.CharacterIn, body)
        if not hasattr(upload, "read"):
            raise Invalid(
                "Send the character's video as multipart field 'video'.",
                fields={"video": ["Required."]},
            )
        cameo = services.character_create(user=request.user, name=data["name"], upload=upload)
        return Response(shapes.character_object(cameo))


@extend_schema(exclude=True)
class CharacterApi(V1View):
    def get(self, request: Request, character_id: str) -> Response:
        cameo = services.character_of(user=request.user, character_id=character_id)
        return Response(shapes.character_object(cameo))

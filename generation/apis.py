"""Generation, video, appearance and provenance endpoints (API.md "Generation and videos")."""

from __future__ import annotations

import hashlib

from django.conf import settings
from django.core.files.storage import default_storage
from django.http import FileResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.parsers import MultiPartParser
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.idempotency import idempotent
from cameos.selectors import cameo_owned
from config.api.errors import Invalid, NotFound, TooLarge
from config.api.pagination import page_of, paginated_response
from config.api.schema import IDEMPOTENCY_HEADER, error_responses
from config.media import signature_valid

from . import selectors, services
from .models import Video
from .serializers import (
    AppearanceOut,
    GenerationIn,
    GenerationOut,
    ProvenanceIn,
    ProvenanceOut,
    VideoOut,
    media_path,
)
from .services.admission import AdmissionRequest

ERR = error_responses(400, 401, 403, 404, 409, 413, 422, 429)


def admit_from_payload(request: Request, data: dict, **overrides) -> Response:
    payload = GenerationIn(data=data)
    payload.is_valid(raise_exception=True)
    values = payload.validated_data
    admission = AdmissionRequest(
        prompt=values["prompt"],
        cameo_ids=values.get("cameos", []),
        remix_of_id=values.get("remix_of"),
        seconds=values.get("seconds", settings.RIFF_DEFAULT_SECONDS),
        aspect=values.get("aspect", "9:16"),
        seed=values.get("seed"),
        serve_id=values.get("serve_id", ""),
    )
    for key, value in overrides.items():
        setattr(admission, key, value)
    generation = services.generation_admit(user=request.user, request=admission)
    generation = selectors.generation_of(user=request.user, generation_id=generation.pk)
    return Response(
        GenerationOut(generation, context={"request": request}).data,
        status=status.HTTP_202_ACCEPTED,
    )


class GenerationsApi(APIView):
    pagination_ordering = ("-created_at", "-id")

    @extend_schema(operation_id="generations_list", responses={200: page_of(GenerationOut)})
    def get(self, request: Request) -> Response:
        return paginated_response(
            self, request, selectors.generations_of(user=request.user), GenerationOut
        )

    @extend_schema(
        request=GenerationIn,
        parameters=[IDEMPOTENCY_HEADER],
        responses={
            202: GenerationOut,
            400: ERR[400],
            403: ERR[403],
            409: ERR[409],
            422: ERR[422],
            429: ERR[429],
        },
    )
    @idempotent
    def post(self, request: Request) -> Response:
        return admit_from_payload(request, request.data)


class GenerationApi(APIView):
    @extend_schema(responses={200: GenerationOut, 404: ERR[404]})
    def get(self, request: Request, generation_id) -> Response:
        generation = selectors.generation_of(user=request.user, generation_id=generation_id)
        return Response(GenerationOut(generation, context={"request": request}).data)


class GenerationCancelApi(APIView):
    @extend_schema(request=None, responses={200: GenerationOut, 404: ERR[404], 409: ERR[409]})
    def post(self, request: Request, generation_id) -> Response:
        generation = selectors.generation_of(user=request.user, generation_id=generation_id)
        services.generation_cancel(generation=generation)
        generation = selectors.generation_of(user=request.user, generation_id=generation_id)
        return Response(GenerationOut(generation, context={"request": request}).data)


class DraftsApi(APIView):
    pagination_ordering = ("-created_at", "-id")

    @extend_schema(responses={200: page_of(VideoOut)})
    def get(self, request: Request) -> Response:
        return paginated_response(self, request, selectors.drafts_of(user=request.user), VideoOut)


class VideoApi(APIView):
    @extend_schema(responses={200: VideoOut, 404: ERR[404]})
    def get(self, request: Request, video_id) -> Response:
        video = selectors.video_visible(user=request.user, video_id=video_id)
        return Response(VideoOut(video, context={"request": request}).data)


VARIANTS = {
    "video": ("content", "video/mp4"),
    "poster": ("poster", "image/jpeg"),
    "preview": ("preview", "image/webp"),
}


class SignedOrAuthenticated(BasePermission):
    """A bearer token, or a signed URL for this very file that has not expired."""

    def has_permission(self, request, view) -> bool:
        return bool(request.user and request.user.is_authenticated) or _signed(request, view)


def _signed(request, view) -> bool:
    variant = request.query_params.get("variant", "video")
    path = media_path(view.kwargs.get("video_id"), variant)
    return signature_valid(
        path, request.query_params.get("expires"), request.query_params.get("sig")
    )


class VideoContentApi(APIView):
    permission_classes = [SignedOrAuthenticated]

    @extend_schema(
        parameters=[
            OpenApiParameter("variant", enum=list(VARIANTS), required=False),
            OpenApiParameter(
                "expires", str, required=False, description="From a signed `*_url` field."
            ),
            OpenApiParameter("sig", str, required=False, description="From a signed `*_url`."),
        ],
        auth=[{"bearerAuth": []}, {}],
        responses={
            (200, "video/mp4"): OpenApiTypes.BINARY,
            (200, "image/jpeg"): OpenApiTypes.BINARY,
            (200, "image/webp"): OpenApiTypes.BINARY,
            400: ERR[400],
            401: ERR[401],
            404: ERR[404],
        },
        description="The file, for a caller who may see the video (bearer token), or for anyone "
        "holding the signed URL an API response gave out, until it expires "
        "(`RIFF_MEDIA_URL_TTL`). A removed video answers 404 either way.",
    )
    def get(self, request: Request, video_id):
        variant = request.query_params.get("variant", "video")
        if variant not in VARIANTS:
            raise Invalid(
                "variant must be video, poster or preview.",
                fields={"variant": ["Unknown variant."]},
            )
        if request.user.is_authenticated:
            video = selectors.video_visible(user=request.user, video_id=video_id)
        else:
            video = selectors.video_unremoved(video_id=video_id)
        field, content_type = VARIANTS[variant]
        name = getattr(video, field)
        if not name or not default_storage.exists(name):
            raise NotFound("No such file.")
        response = FileResponse(default_storage.open(name, "rb"), content_type=content_type)
        response["Cache-Control"] = "private, max-age=3600"
        response["X-Content-Type-Options"] = "nosniff"
        return response


class AppearancesApi(APIView):
    pagination_ordering = ("-created_at", "-id")

    @extend_schema(responses={200: page_of(AppearanceOut), 403: ERR[403], 404: ERR[404]})
    def get(self, request: Request, cameo_id) -> Response:
        cameo = cameo_owned(user=request.user, cameo_id=cameo_id)
        return paginated_response(
            self, request, selectors.appearances_of(cameo=cameo), AppearanceOut
        )


class AppearanceApi(APIView):
    @extend_schema(responses={204: None, 403: ERR[403], 404: ERR[404]})
    def delete(self, request: Request, cameo_id, video_id) -> Response:
        cameo = cameo_owned(user=request.user, cameo_id=cameo_id)
        appearance = selectors.appearances_of(cameo=cameo).filter(video_id=video_id).first()
        if appearance is None:
            raise NotFound("This video does not contain your cameo.")
        services.appearance_remove(cameo=cameo, video=appearance.video, actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class ProvenanceVerifyApi(APIView):
    parser_classes = [MultiPartParser]

    @extend_schema(
        request={"multipart/form-data": ProvenanceIn},
        responses={200: ProvenanceOut, 400: ERR[400], 413: ERR[413]},
    )
    def post(self, request: Request) -> Response:
        upload = request.FILES.get("file")
        if upload is None:
            raise Invalid(
                "Send the file as multipart field 'file'.", fields={"file": ["Required."]}
            )
        if upload.size > settings.RIFF_PROVENANCE_MAX_BYTES:
            raise TooLarge("The file is too large.", code="too_large")
        data = upload.read()
        digest = hashlib.sha256(data).hexdigest()
        from .provenance import verify_media

        result = verify_media(data, mime="video/mp4")
        # Ours when the bytes are exactly a video we made, or when our own signature vouches
        # for the file (a re-muxed copy keeps its manifest but changes the hash).
        video = Video.objects.filter(sha256=digest).only("pk", "sha256").first()
        if video is None and result.valid and result.trusted and result.riff:
            video = (
                Video.objects.filter(pk=result.riff.get("video_id")).only("pk", "sha256").first()
            )
        return Response(
            {
                "ours": video is not None,
                "video_id": str(video.pk) if video is not None else None,
                "manifest": result.riff if result.has_manifest else None,
                "valid_signature": bool(result.valid),
                "sha256": digest,
            }
        )

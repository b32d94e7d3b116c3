"""Generation, video, appearance and provenance endpoints (API.md "Generation and videos")."""

from __future__ import annotations

from django.conf import settings
from django.core.files.storage import default_storage
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.parsers import MultiPartParser
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.idempotency import idempotent
from cameos.selectors import cameo_owned
from config.core.errors import Invalid, NotFound
from config.core.files import FileStream
from config.core.media import signature_valid
from config.core.pagination import page_of, paginated_response
from config.core.schema import IDEMPOTENCY_HEADER, error_responses
from config.core.uploads import upload_file
from rights.selectors import claim_out
from rights.serializers import ClaimsOut

from . import selectors, services
from .serializers import (
    AppearanceOut,
    GenerationIn,
    GenerationOut,
    ProvenanceIn,
    ProvenanceOut,
    VideoOut,
    generation_out,
    media_path,
)
from .services.admission import admit

ERR = error_responses(400, 401, 403, 404, 409, 413, 422, 429)


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
        payload = GenerationIn(data=request.data)
        payload.is_valid(raise_exception=True)
        # The admitted row as written, its cameo links included: nothing to read back.
        generation = admit(user=request.user, payload=payload.validated_data)
        return Response(generation_out(generation, request), status=status.HTTP_202_ACCEPTED)


class GenerationApi(APIView):
    @extend_schema(responses={200: GenerationOut, 404: ERR[404]})
    def get(self, request: Request, generation_id) -> Response:
        generation = selectors.generation_of(user=request.user, generation_id=generation_id)
        return Response(generation_out(generation, request))


class GenerationCancelApi(APIView):
    @extend_schema(request=None, responses={200: GenerationOut, 404: ERR[404], 409: ERR[409]})
    def post(self, request: Request, generation_id) -> Response:
        generation = selectors.generation_of(user=request.user, generation_id=generation_id)
        services.generation_cancel(generation=generation)
        generation = selectors.generation_of(user=request.user, generation_id=generation_id)
        return Response(generation_out(generation, request))


class DraftsApi(APIView):
    pagination_ordering = ("-created_at", "-id")

    @extend_schema(responses={200: page_of(VideoOut)})
    def get(self, request: Request) -> Response:
        return paginated_response(self, request, selectors.drafts_of(user=request.user), VideoOut)


class VideoClaimsApi(APIView):
    @extend_schema(
        responses={200: ClaimsOut, **error_responses(401, 404)},
        description="The IP claims on a video (docs/rights.md): its owner and the owners of "
        "its cameos see all of them, members of a claiming holder see that holder's.",
    )
    def get(self, request: Request, video_id) -> Response:
        claims = selectors.video_claims_visible(user=request.user, video_id=video_id)
        return Response(ClaimsOut({"results": [claim_out(c) for c in claims], "next": None}).data)


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
# Served instead of the variant's own type to a client whose Accept names only this (generic
# generated clients: openapi-python-client reads a binary body only under this type).
OCTET_STREAM = "application/octet-stream"


def _content_type(request: Request, native: str) -> str:
    accepted = {
        part.split(";", 1)[0].strip().lower()
        for part in request.META.get("HTTP_ACCEPT", "").split(",")
    }
    return OCTET_STREAM if OCTET_STREAM in accepted and native not in accepted else native


CONTENT_TYPES = [media for _, media in VARIANTS.values()]
CONTENT_200 = OpenApiResponse(
    OpenApiTypes.BINARY,
    description="The file: `video/mp4` (variant `video`), `image/jpeg` (`poster`) or "
    "`image/webp` (`preview`); `application/octet-stream` instead when the Accept header names "
    "that and not the variant's own type.",
)


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

    def perform_content_negotiation(self, request, force=False):
        # The file bypasses DRF's renderers, so an Accept header naming its type (a player's
        # `video/mp4`) must not be a 406; errors still answer the JSON envelope.
        return super().perform_content_negotiation(request, force=True)

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
            **{(200, media): CONTENT_200 for media in (*CONTENT_TYPES, OCTET_STREAM)},
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
        response = FileStream(
            default_storage.open(name, "rb"), content_type=_content_type(request, content_type)
        )
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
        ProvenanceIn.refuse_unknown(request.data)
        upload = upload_file(
            request, field="file", max_bytes=settings.RIFF_PROVENANCE_MAX_BYTES, what="file"
        )
        provenance = selectors.provenance_of(data=upload.read())
        return Response(ProvenanceOut(provenance).data)

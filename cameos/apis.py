"""Cameo endpoints (API.md "Cameos")."""

from __future__ import annotations

from django.conf import settings
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.selectors import user_by_username
from config.core.errors import Invalid, NotFound
from config.core.pagination import page_of, paginated_response
from config.core.uploads import upload_file

from . import selectors, services
from .models import AccessRequest, AccessRequestStatus, CameoKind
from .recording import probe_recording
from .serializers import (
    AccessRequestIn,
    AccessRequestOut,
    CameoCreateIn,
    CameoOut,
    CameoUpdateIn,
    GrantIn,
    GrantOut,
    RecordingIn,
)

ERR = {
    code: OpenApiResponse(description="error envelope") for code in (400, 403, 404, 409, 413, 415)
}


class CameosApi(APIView):
    pagination_ordering = ("-created_at", "-id")

    @extend_schema(
        operation_id="cameos_list",
        parameters=[OpenApiParameter("scope", enum=["mine", "usable"], required=False)],
        responses={200: page_of(CameoOut)},
    )
    def get(self, request: Request) -> Response:
        scope = request.query_params.get("scope", "mine")
        if scope == "mine":
            qs = selectors.cameos_owned_by(user=request.user)
        elif scope == "usable":
            qs = selectors.cameos_usable_by(user=request.user)
        else:
            raise Invalid("scope must be mine or usable.", fields={"scope": ["mine or usable"]})
        return paginated_response(self, request, qs, CameoOut)

    @extend_schema(request=CameoCreateIn, responses={201: CameoOut, 400: ERR[400], 409: ERR[409]})
    def post(self, request: Request) -> Response:
        data = CameoCreateIn(data=request.data)
        data.is_valid(raise_exception=True)
        cameo = services.cameo_create(owner=request.user, **data.validated_data)
        return Response(
            CameoOut(cameo, context={"request": request}).data, status=status.HTTP_201_CREATED
        )


class CameoApi(APIView):
    @extend_schema(responses={200: CameoOut, 404: ERR[404]})
    def get(self, request: Request, cameo_id) -> Response:
        cameo = selectors.cameo_visible_to(user=request.user, cameo_id=cameo_id)
        return Response(CameoOut(cameo, context={"request": request}).data)

    @extend_schema(
        request=CameoUpdateIn,
        responses={200: CameoOut, 400: ERR[400], 403: ERR[403], 404: ERR[404]},
    )
    def patch(self, request: Request, cameo_id) -> Response:
        cameo = selectors.cameo_owned(user=request.user, cameo_id=cameo_id)
        data = CameoUpdateIn(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        cameo = services.cameo_update(cameo=cameo, data=data.validated_data)
        return Response(CameoOut(cameo, context={"request": request}).data)

    @extend_schema(responses={204: None, 403: ERR[403], 404: ERR[404]})
    def delete(self, request: Request, cameo_id) -> Response:
        cameo = selectors.cameo_owned(user=request.user, cameo_id=cameo_id)
        services.cameo_revoke(cameo=cameo, actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class RecordingApi(APIView):
    parser_classes = [MultiPartParser]

    @extend_schema(
        request={"multipart/form-data": RecordingIn},
        responses={
            202: CameoOut,
            400: ERR[400],
            403: ERR[403],
            404: ERR[404],
            409: ERR[409],
            413: ERR[413],
            415: ERR[415],
        },
    )
    def put(self, request: Request, cameo_id) -> Response:
        cameo = selectors.cameo_owned(user=request.user, cameo_id=cameo_id)
        RecordingIn.refuse_unknown(request.data)
        upload = upload_file(
            request, field="video", max_bytes=settings.RIFF_CAMEO_MAX_BYTES, what="recording"
        )
        data = upload.read()
        info = probe_recording(data, require_audio=cameo.kind == CameoKind.PERSON)
        cameo = services.cameo_submit_recording(cameo=cameo, data=data, info=info)
        return Response(
            CameoOut(cameo, context={"request": request}).data, status=status.HTTP_202_ACCEPTED
        )


class AccessRequestsApi(APIView):
    pagination_ordering = ("-created_at", "-id")

    @extend_schema(responses={200: page_of(AccessRequestOut), 403: ERR[403], 404: ERR[404]})
    def get(self, request: Request, cameo_id) -> Response:
        cameo = selectors.cameo_owned(user=request.user, cameo_id=cameo_id)
        return paginated_response(
            self, request, selectors.access_requests_of(cameo=cameo), AccessRequestOut
        )

    @extend_schema(
        request=AccessRequestIn,
        responses={201: AccessRequestOut, 403: ERR[403], 404: ERR[404], 409: ERR[409]},
    )
    def post(self, request: Request, cameo_id) -> Response:
        cameo = selectors.cameo_visible_to(user=request.user, cameo_id=cameo_id)
        data = AccessRequestIn(data=request.data)
        data.is_valid(raise_exception=True)
        access = services.access_request_create(
            cameo=cameo, requester=request.user, message=data.validated_data.get("message", "")
        )
        return Response(
            AccessRequestOut(access, context={"request": request}).data,
            status=status.HTTP_201_CREATED,
        )


class AccessRequestDecisionApi(APIView):
    decision: str = ""

    @extend_schema(
        request=None, responses={200: AccessRequestOut, 403: ERR[403], 404: ERR[404], 409: ERR[409]}
    )
    def post(self, request: Request, cameo_id, request_id) -> Response:
        cameo = selectors.cameo_owned(user=request.user, cameo_id=cameo_id)
        access = AccessRequest.objects.filter(pk=request_id, cameo=cameo).first()
        if access is None:
            raise NotFound("No such request.")
        access = services.access_request_transition(
            request=access, to=self.decision, actor=request.user
        )
        return Response(AccessRequestOut(access, context={"request": request}).data)


class ApproveApi(AccessRequestDecisionApi):
    decision = AccessRequestStatus.APPROVED


class DenyApi(AccessRequestDecisionApi):
    decision = AccessRequestStatus.DENIED


class GrantsApi(APIView):
    pagination_ordering = ("-created_at", "-id")

    @extend_schema(responses={200: page_of(GrantOut), 403: ERR[403], 404: ERR[404]})
    def get(self, request: Request, cameo_id) -> Response:
        cameo = selectors.cameo_owned(user=request.user, cameo_id=cameo_id)
        return paginated_response(self, request, selectors.grants_of(cameo=cameo), GrantOut)

    @extend_schema(
        request=GrantIn, responses={201: GrantOut, 400: ERR[400], 403: ERR[403], 404: ERR[404]}
    )
    def post(self, request: Request, cameo_id) -> Response:
        cameo = selectors.cameo_owned(user=request.user, cameo_id=cameo_id)
        data = GrantIn(data=request.data)
        data.is_valid(raise_exception=True)
        user = user_by_username(data.validated_data["username"])
        grant = services.cameo_grant(cameo=cameo, user=user, granted_by=request.user)
        return Response(
            GrantOut(grant, context={"request": request}).data, status=status.HTTP_201_CREATED
        )


class GrantApi(APIView):
    @extend_schema(responses={204: None, 403: ERR[403], 404: ERR[404]})
    def delete(self, request: Request, cameo_id, username: str) -> Response:
        cameo = selectors.cameo_owned(user=request.user, cameo_id=cameo_id)
        user = user_by_username(username)
        services.cameo_ungrant(cameo=cameo, user=user)
        return Response(status=status.HTTP_204_NO_CONTENT)

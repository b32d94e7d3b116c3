"""Accounts endpoints (API.md "Accounts"). Views parse, call one service, serialize."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth import authenticate
from django.http import HttpResponse
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.parsers import MultiPartParser
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.core.errors import Invalid
from config.core.jsonbody import json_response
from config.core.pagination import page_of, paginated_response
from config.core.throttles import ScopedThrottle
from config.core.uploads import upload_file

from . import selectors, services
from .apikeys import api_key_create, api_key_revoke, api_keys_of
from .authentication import BearerTokenAuthentication
from .realtime import realtime_ticket_issue
from .serializers import (
    ApiKeyCreatedOut,
    ApiKeyIn,
    ApiKeyOut,
    AuthOut,
    AvatarIn,
    FollowerRowOut,
    FollowingRowOut,
    InviteOut,
    LoginIn,
    MeIn,
    MeOut,
    NotificationOut,
    NotificationsReadIn,
    NotificationsReadOut,
    ProfileOut,
    RegisterIn,
    TicketOut,
    me_out,
)
from .throttles import LoginUsernameThrottle
from .tokens import token_issue, token_revoke, token_revoke_all

ERRORS = {
    400: OpenApiResponse(description="Validation error (error envelope)"),
    401: OpenApiResponse(description="Not authenticated"),
    404: OpenApiResponse(description="Not found"),
    429: OpenApiResponse(description="rate_limited, with Retry-After"),
}


def _auth_response(request: Request, user, status_code: int) -> Response:
    token = token_issue(user=user, user_agent=request.META.get("HTTP_USER_AGENT", ""))
    return Response(
        AuthOut({"token": token, "user": user}, context={"request": request}).data,
        status=status_code,
    )


class RegisterApi(APIView):
    permission_classes = [AllowAny]
    authentication_classes: list = []
    throttle_classes = [ScopedThrottle]
    throttle_scope = "register"

    @extend_schema(
        request=RegisterIn, responses={201: AuthOut, 400: ERRORS[400], 429: ERRORS[429]}, auth=[]
    )
    def post(self, request: Request) -> Response:
        data = RegisterIn(data=request.data)
        data.is_valid(raise_exception=True)
        user = services.user_register(**data.validated_data)
        return _auth_response(request, user, status.HTTP_201_CREATED)


class LoginApi(APIView):
    permission_classes = [AllowAny]
    authentication_classes: list = []
    throttle_classes = [ScopedThrottle, LoginUsernameThrottle]
    throttle_scope = "login"

    @extend_schema(
        request=LoginIn, responses={200: AuthOut, 400: ERRORS[400], 429: ERRORS[429]}, auth=[]
    )
    def post(self, request: Request) -> Response:
        data = LoginIn(data=request.data)
        data.is_valid(raise_exception=True)
        user = authenticate(
            request,
            username=data.validated_data["username"],
            password=data.validated_data["password"],
        )
        if user is None:
            raise Invalid("Wrong username or password.", code="invalid_credentials")
        return _auth_response(request, user, status.HTTP_200_OK)


class LogoutApi(APIView):
    @extend_schema(request=None, responses={204: None, 401: ERRORS[401]})
    def post(self, request: Request) -> Response:
        token_revoke(token=request.auth)
        return Response(status=status.HTTP_204_NO_CONTENT)


class LogoutAllApi(APIView):
    @extend_schema(request=None, responses={204: None, 401: ERRORS[401]})
    def post(self, request: Request) -> Response:
        token_revoke_all(user=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class MeApi(APIView):
    @extend_schema(responses={200: MeOut})
    def get(self, request: Request) -> HttpResponse:
        return json_response(me_out(request.user, request))

    @extend_schema(request=MeIn, responses={200: MeOut, 400: ERRORS[400]})
    def patch(self, request: Request) -> Response:
        data = MeIn(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        user = services.user_update(user=request.user, data=data.validated_data)
        return Response(MeOut(user, context={"request": request}).data)

    @extend_schema(responses={204: None})
    def delete(self, request: Request) -> Response:
        services.user_delete(user=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class AvatarApi(APIView):
    parser_classes = [MultiPartParser]

    @extend_schema(
        request={"multipart/form-data": AvatarIn},
        responses={
            200: MeOut,
            400: ERRORS[400],
            413: OpenApiResponse(description="too_large"),
            415: OpenApiResponse(description="unsupported_media"),
        },
    )
    def put(self, request: Request) -> Response:
        AvatarIn.refuse_unknown(request.data)
        upload = upload_file(
            request, field="image", max_bytes=settings.RIFF_AVATAR_MAX_BYTES, what="image"
        )
        user = services.user_set_avatar(user=request.user, content=upload.read())
        return Response(MeOut(user, context={"request": request}).data)


class InvitesApi(APIView):
    pagination_ordering = ("-created_at", "-id")

    @extend_schema(responses={200: page_of(InviteOut)})
    def get(self, request: Request) -> Response:
        return paginated_response(self, request, selectors.invites_of(user=request.user), InviteOut)

    @extend_schema(
        request=None,
        responses={201: InviteOut, 403: OpenApiResponse(description="invite_limit_reached")},
    )
    def post(self, request: Request) -> Response:
        invite = services.invite_mint(created_by=request.user)
        return Response(
            InviteOut(invite, context={"request": request}).data, status=status.HTTP_201_CREATED
        )


class ProfileApi(APIView):
    @extend_schema(responses={200: ProfileOut, 404: ERRORS[404]})
    def get(self, request: Request, username: str) -> Response:
        user = selectors.user_visible_to(viewer=request.user, username=username)
        user = selectors.user_with_relationship(viewer=request.user, user=user)
        return Response(ProfileOut(user, context={"request": request}).data)


class FollowApi(APIView):
    @extend_schema(
        request=None,
        responses={
            204: None,
            400: OpenApiResponse(description="cannot_follow_self: the username is the caller's"),
            403: OpenApiResponse(description="blocked: one of you blocked the other"),
            404: ERRORS[404],
        },
        description="Follows the user (idempotent). Following yourself is refused with 400 "
        "`cannot_follow_self`.",
    )
    def post(self, request: Request, username: str) -> Response:
        user = selectors.user_visible_to(viewer=request.user, username=username)
        services.follow_create(follower=request.user, followee=user)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(responses={204: None, 404: ERRORS[404]})
    def delete(self, request: Request, username: str) -> Response:
        user = selectors.user_by_username(username)
        services.follow_delete(follower=request.user, followee=user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class BlockApi(APIView):
    # Blocking must work even when the other side already blocked you, so no visibility filter.
    @extend_schema(
        request=None,
        responses={
            204: None,
            400: OpenApiResponse(description="cannot_block_self: the username is the caller's"),
            404: ERRORS[404],
        },
    )
    def post(self, request: Request, username: str) -> Response:
        user = selectors.user_by_username(username)
        services.block_create(blocker=request.user, blocked=user)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(responses={204: None, 404: ERRORS[404]})
    def delete(self, request: Request, username: str) -> Response:
        user = selectors.user_by_username(username)
        services.block_delete(blocker=request.user, blocked=user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class FollowersApi(APIView):
    # The tie-break is the other user's public UUID, never the Follow row's sequential id.
    pagination_ordering = ("-created_at", "-follower_id")

    @extend_schema(responses={200: page_of(FollowerRowOut), 404: ERRORS[404]})
    def get(self, request: Request, username: str) -> Response:
        user = selectors.user_visible_to(viewer=request.user, username=username)
        queryset = selectors.followers_of(user=user, viewer=request.user)
        return paginated_response(self, request, queryset, FollowerRowOut)


class FollowingApi(APIView):
    pagination_ordering = ("-created_at", "-followee_id")

    @extend_schema(responses={200: page_of(FollowingRowOut), 404: ERRORS[404]})
    def get(self, request: Request, username: str) -> Response:
        user = selectors.user_visible_to(viewer=request.user, username=username)
        queryset = selectors.following_of(user=user, viewer=request.user)
        return paginated_response(self, request, queryset, FollowingRowOut)


class NotificationsApi(APIView):
    pagination_ordering = ("-created_at", "-id")

    @extend_schema(responses={200: page_of(NotificationOut)})
    def get(self, request: Request) -> Response:
        queryset = selectors.notifications_of(user=request.user)
        return paginated_response(self, request, queryset, NotificationOut)


class NotificationsReadApi(APIView):
    @extend_schema(request=NotificationsReadIn, responses={200: NotificationsReadOut})
    def post(self, request: Request) -> Response:
        data = NotificationsReadIn(data=request.data)
        data.is_valid(raise_exception=True)
        marked = services.notifications_mark_read(
            user=request.user, ids=data.validated_data.get("ids")
        )
        return Response({"marked": marked})


class RealtimeTicketApi(APIView):
    """A one-time ticket for clients that can't set headers on a websocket (browsers)."""

    @extend_schema(request=None, responses={201: TicketOut})
    def post(self, request: Request) -> Response:
        issued = realtime_ticket_issue(token=request.auth)
        scheme = "wss" if request.is_secure() else "ws"
        url = f"{scheme}://{request.get_host()}/ws/?ticket={issued.ticket}"
        return Response(
            TicketOut({"ticket": issued.ticket, "expires_in": issued.expires_in, "url": url}).data,
            status=status.HTTP_201_CREATED,
        )


class ApiKeysApi(APIView):
    """The caller's Videos API keys. Managed with a session token only, never with a key:
    a leaked key must not be able to mint more keys or revoke the owner's."""

    authentication_classes = [BearerTokenAuthentication]
    pagination_ordering = ("-created_at", "-id")

    @extend_schema(
        responses={200: page_of(ApiKeyOut), 400: ERRORS[400], 401: ERRORS[401]},
        description="Your live (unrevoked) API keys, newest first. The secret is never shown "
        "again after creation; `prefix` tells keys apart.",
    )
    def get(self, request: Request) -> Response:
        return paginated_response(self, request, api_keys_of(user=request.user), ApiKeyOut)

    @extend_schema(
        request=ApiKeyIn,
        responses={
            201: ApiKeyCreatedOut,
            400: ERRORS[400],
            401: ERRORS[401],
            409: OpenApiResponse(description="too_many_api_keys: revoke one first"),
        },
        description="Creates a key for the Videos API at /v1/ (`Authorization: Bearer rk_...`). "
        "`key` is in this response only. Each user may hold `RIFF_API_KEYS_PER_USER` (20) live "
        "keys.",
    )
    def post(self, request: Request) -> Response:
        data = ApiKeyIn(data=request.data)
        data.is_valid(raise_exception=True)
        key, raw = api_key_create(user=request.user, name=data.validated_data["name"])
        return Response(
            ApiKeyCreatedOut(key, context={"request": request, "key": raw}).data,
            status=status.HTTP_201_CREATED,
        )


class ApiKeyApi(APIView):
    authentication_classes = [BearerTokenAuthentication]

    @extend_schema(
        responses={204: None, 401: ERRORS[401], 404: ERRORS[404]},
        description="Revokes the key: it stops working at once. Revoking it again is a no-op "
        "(204); another user's key is 404.",
    )
    def delete(self, request: Request, key_id) -> Response:
        api_key_revoke(user=request.user, key_id=key_id)
        return Response(status=status.HTTP_204_NO_CONTENT)

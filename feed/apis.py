"""Posts, likes, comments, the feed and its events (API.md "Posts, feed, remix")."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone
from drf_spectacular.utils import (
    OpenApiParameter,
    extend_schema,
)
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.idempotency import idempotent
from accounts.selectors import user_visible_to
from config.core.errors import Forbidden, Invalid
from config.core.pagination import (
    KeysetPagination,
    next_link,
    page_of,
    paginated_response,
    parse_limit,
)
from config.core.schema import IDEMPOTENCY_HEADER, error_responses

from . import selectors, services
from .feeds import feed_preload, feed_response, following_page, latest_page
from .serializers import (
    CommentIn,
    CommentOut,
    CreationMetricsOut,
    FeedEventsIn,
    FeedEventsOut,
    FeedItemOut,
    FeedPreferencesIn,
    FeedPreferencesOut,
    LikeOut,
    PostIn,
    PostOut,
)

ERR = error_responses(400, 403, 404, 409, 422)
FEED_KINDS = ("for_you", "following", "latest")


def post_out(post, request: Request) -> dict:
    selectors.annotate_posts([post], viewer=request.user)
    return PostOut(post, context={"request": request}).data


class PostsApi(APIView):
    @extend_schema(
        request=PostIn,
        parameters=[IDEMPOTENCY_HEADER],
        responses={200: PostOut, 201: PostOut, 400: ERR[400], 403: ERR[403], 404: ERR[404]},
        description="Publishes an own draft. Publishing the same video again returns its post "
        "with 200.",
    )
    @idempotent
    def post(self, request: Request) -> Response:
        payload = PostIn(data=request.data)
        payload.is_valid(raise_exception=True)
        values = payload.validated_data
        post, created = services.post_publish(
            user=request.user,
            video_id=values["video_id"],
            caption=values["caption"],
            allow_remix=values["allow_remix"],
        )
        return Response(
            post_out(selectors.post_visible(user=request.user, post_id=post.pk), request),
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )


class PostApi(APIView):
    @extend_schema(responses={200: PostOut, 404: ERR[404]})
    def get(self, request: Request, post_id) -> Response:
        return Response(
            post_out(selectors.post_visible(user=request.user, post_id=post_id), request)
        )

    @extend_schema(responses={204: None, 404: ERR[404]})
    def delete(self, request: Request, post_id) -> Response:
        post = selectors.post_visible(user=request.user, post_id=post_id)
        services.post_delete(user=request.user, post=post)
        return Response(status=status.HTTP_204_NO_CONTENT)


class LikeApi(APIView):
    def _answer(self, request: Request, post) -> Response:
        count = selectors.post_counts([post.pk]).get(post.pk, {}).get("likes") or 0
        liked = post.likes.filter(user=request.user).exists()
        return Response(LikeOut({"liked": liked, "like_count": count}).data)

    @extend_schema(request=None, responses={200: LikeOut, 404: ERR[404]})
    def post(self, request: Request, post_id) -> Response:
        post = selectors.post_visible(user=request.user, post_id=post_id)
        services.like_set(user=request.user, post=post, liked=True)
        return self._answer(request, post)

    @extend_schema(responses={200: LikeOut, 404: ERR[404]})
    def delete(self, request: Request, post_id) -> Response:
        post = selectors.post_visible(user=request.user, post_id=post_id)
        services.like_set(user=request.user, post=post, liked=False)
        return self._answer(request, post)


class CommentsApi(APIView):
    pagination_ordering = ("-created_at", "-id")

    @extend_schema(responses={200: page_of(CommentOut), 404: ERR[404]})
    def get(self, request: Request, post_id) -> Response:
        post = selectors.post_visible(user=request.user, post_id=post_id)
        return paginated_response(
            self, request, selectors.comments_of(user=request.user, post=post), CommentOut
        )

    @extend_schema(request=CommentIn, responses={201: CommentOut, 400: ERR[400], 404: ERR[404]})
    def post(self, request: Request, post_id) -> Response:
        post = selectors.post_visible(user=request.user, post_id=post_id)
        payload = CommentIn(data=request.data)
        payload.is_valid(raise_exception=True)
        comment = services.comment_create(
            user=request.user, post=post, body=payload.validated_data["body"]
        )
        return Response(
            CommentOut(comment, context={"request": request}).data, status=status.HTTP_201_CREATED
        )


class UserPostsApi(APIView):
    pagination_ordering = ("-created_at", "-id")

    @extend_schema(
        responses={200: page_of(PostOut), 400: ERR[400], 404: ERR[404]},
        description="The user's live posts, newest first, that the caller may see. 404 when "
        "the user does not exist or a block stands between you.",
    )
    def get(self, request: Request, username: str) -> Response:
        author = user_visible_to(viewer=request.user, username=username)
        paginator = KeysetPagination()
        page = paginator.paginate_queryset(
            selectors.posts_by(user=request.user, author=author), request, self
        )
        # Counts, likes and cameos for the whole page in three queries.
        selectors.annotate_posts(page, viewer=request.user)
        return paginator.get_paginated_response(
            PostOut(page, many=True, context={"request": request}).data
        )


class FeedApi(APIView):
    # Latest's stamps and Following's inbox ride token authentication's round trip
    # (accounts.authentication).
    preload = staticmethod(feed_preload)

    @extend_schema(
        parameters=[
            OpenApiParameter("kind", str, enum=list(FEED_KINDS), required=False),
            OpenApiParameter("cursor", str, required=False),
            OpenApiParameter("limit", int, required=False),
        ],
        responses={200: page_of(FeedItemOut), 400: ERR[400]},
    )
    def get(self, request: Request) -> Response:
        kind = request.query_params.get("kind", "for_you")
        if kind not in FEED_KINDS:
            raise Invalid(
                "Unknown feed kind.", fields={"kind": [f"One of {', '.join(FEED_KINDS)}."]}
            )
        if kind == "following":
            page = following_page(request)
        elif kind == "latest":
            page = latest_page(request)
        else:
            from .ranking import for_you_page

            page = for_you_page(request)
        from .ranking.cards import teen_cap_apply

        page = teen_cap_apply(request.user, page)
        limit = len(page.items) if page.cursor is None else None
        # The same body DRF would render, written without re-encoding the posts
        # (feed.hydrate.posts_json keeps each post's JSON; docs/feed.md).
        return feed_response(page.items, next_link(request, page.cursor, limit or _limit(request)))


def _limit(request: Request) -> int:

    return parse_limit(request)


class FeedEventsApi(APIView):
    @extend_schema(request=FeedEventsIn, responses={202: FeedEventsOut, 400: ERR[400]})
    def post(self, request: Request) -> Response:
        data = request.data
        if isinstance(data, list):  # a bare JSON array of events is accepted too
            data = {"events": data}
        payload = FeedEventsIn(data=data)
        payload.is_valid(raise_exception=True)
        accepted, rejected = services.events_record(
            user=request.user, events=payload.validated_data["events"]
        )
        return Response(
            FeedEventsOut({"accepted": accepted, "rejected": rejected}).data,
            status=status.HTTP_202_ACCEPTED,
        )


def _preferences_out(pref) -> dict:
    if pref is None:
        return {"steer": "", "personalized": True, "steer_ready": False, "updated_at": None}
    return {
        "steer": pref.steer,
        "personalized": pref.personalized,
        "steer_ready": bool(pref.steer_embedding) or not pref.steer,
        "updated_at": pref.updated_at,
    }


class FeedPreferencesApi(APIView):
    @extend_schema(responses={200: FeedPreferencesOut})
    def get(self, request: Request) -> Response:
        from .ranking.sources import preferences_get

        return Response(FeedPreferencesOut(_preferences_out(preferences_get(request.user))).data)

    @extend_schema(
        request=FeedPreferencesIn,
        responses={200: FeedPreferencesOut, 400: ERR[400]},
        description="Steers For You with free text (embedded on a worker; `steer_ready` tells "
        "when it applies) and turns personalisation off or on. `personalized: false` serves "
        "trending and latest posts only, nothing derived from the caller's history.",
    )
    def put(self, request: Request) -> Response:
        payload = FeedPreferencesIn(data=request.data)
        payload.is_valid(raise_exception=True)
        pref = services.preferences_set(
            user=request.user,
            steer=payload.validated_data["steer"].strip(),
            personalized=payload.validated_data["personalized"],
        )
        return Response(FeedPreferencesOut(_preferences_out(pref)).data)


class CreationMetricsApi(APIView):
    @extend_schema(
        parameters=[
            OpenApiParameter(
                "days", int, required=False, description="Window ending now (1-365, default 30)."
            )
        ],
        responses={200: CreationMetricsOut, 400: ERR[400], 403: ERR[403]},
        description="Staff only. Definitions in docs/feed.md (creation metrics).",
    )
    def get(self, request: Request) -> Response:
        if not request.user.is_staff:
            raise Forbidden("Staff only.")
        from .metrics import creation_metrics

        raw = request.query_params.get("days", "30")
        # isdigit() alone passes "²" and 5,000-digit strings, which int() then refuses (a 500).
        if not (raw.isascii() and raw.isdigit() and len(raw) <= 3) or not 1 <= int(raw) <= 365:
            raise Invalid("days must be 1-365.", fields={"days": ["An integer from 1 to 365."]})
        end = timezone.now()
        start = end - timedelta(days=int(raw))
        return Response(CreationMetricsOut(creation_metrics(start=start, end=end)).data)

"""Remix endpoints (API.md "Posts, feed, remix"): remix a post, its remixes, lineage, tree."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.idempotency import idempotent
from config.core.errors import Invalid
from config.core.pagination import (
    KeysetPagination,
    cursor_scope,
    decode_cursor,
    encode_cursor,
    next_link,
    page_of,
    parse_limit,
)
from config.core.schema import IDEMPOTENCY_HEADER, error_responses
from feed.selectors import annotate_posts, post_visible
from feed.serializers import PostOut
from feed.serving import serve_id_parse
from generation.selectors import generation_of
from generation.serializers import GenerationOut
from generation.services.admission import admit

from . import selectors
from .serializers import ChainPostOut, RemixIn, RemixTreeNodeOut, RemixTreeOut


class RemixApi(APIView):
    @extend_schema(
        request=RemixIn,
        parameters=[IDEMPOTENCY_HEADER],
        responses={202: GenerationOut, **error_responses(400, 403, 404, 409, 422, 429)},
        description="Starts a generation that remixes this post (the answer is the generation, "
        "`remix_of` set). 403 `remix_not_allowed` when its author turned remixes off or a block "
        "stands between you. A `serve_id` that was not served to you is ignored.",
    )
    @idempotent
    def post(self, request: Request, post_id) -> Response:
        parent = selectors.remix_parent(user=request.user, post_id=post_id)
        # The path names the parent: RemixIn has no `remix_of`, so a body that names one is
        # refused like any unknown key.
        payload = RemixIn(data=request.data)
        payload.is_valid(raise_exception=True)
        values = dict(payload.validated_data)
        serve_id = values.get("serve_id", "")
        if serve_id and not serve_id_parse(serve_id, user_id=request.user.pk):
            serve_id = ""  # not served to this caller: ignored, as documented above
        generation = admit(
            user=request.user, payload={**values, "remix_of": parent.pk, "serve_id": serve_id}
        )
        generation = generation_of(user=request.user, generation_id=generation.pk)
        return Response(
            GenerationOut(generation, context={"request": request}).data,
            status=status.HTTP_202_ACCEPTED,
        )


class RemixesApi(APIView):
    pagination_ordering = ("-created_at", "-id")

    @extend_schema(responses={200: page_of(PostOut), **error_responses(400, 404)})
    def get(self, request: Request, post_id) -> Response:
        post = post_visible(user=request.user, post_id=post_id)
        paginator = KeysetPagination()
        page = paginator.paginate_queryset(
            selectors.remixes_of(user=request.user, post=post), request, self
        )
        # Counts for the whole page in three queries (feed.selectors.annotate_posts).
        annotate_posts(page, viewer=request.user)
        return paginator.get_paginated_response(
            PostOut(page, many=True, context={"request": request}).data
        )


def _placeholder(pk, depth: int) -> dict[str, Any]:
    return {"id": str(pk), "state": "unavailable", "depth": depth}


class LineageApi(APIView):
    @extend_schema(
        parameters=[
            OpenApiParameter("cursor", str, required=False),
            OpenApiParameter("limit", int, required=False),
        ],
        responses={200: page_of(ChainPostOut), **error_responses(400, 404)},
        description="Ancestors from the parent to the root, in pages. An ancestor you may not "
        'see (deleted, removed, blocked) is `{id, state: "unavailable", depth}`.',
    )
    def get(self, request: Request, post_id) -> Response:
        post = post_visible(user=request.user, post_id=post_id)
        limit = parse_limit(request)
        offset, scope = 0, cursor_scope("remix.lineage", request)
        if raw := request.query_params.get("cursor"):
            (offset,) = decode_cursor(raw, scope=scope, types=(int,))
        page = selectors.lineage(user=request.user, post=post, offset=offset, limit=limit)
        posts = [a["post"] for a in page.ancestors if a["post"] is not None]
        annotate_posts(posts, viewer=request.user)
        data = {
            row["id"]: row
            for row in ChainPostOut(posts, many=True, context={"request": request}).data
        }
        results = [
            data[str(a["id"])] if a["post"] is not None else _placeholder(a["id"], a["depth"])
            for a in page.ancestors
        ]
        cursor = encode_cursor([offset + len(results)], scope=scope) if page.more else None
        return Response({"results": results, "next": next_link(request, cursor, limit)})


class TreeApi(APIView):
    @extend_schema(
        parameters=[
            OpenApiParameter(
                "depth",
                # The bounds _depth() enforces, so generated clients and fuzzers know them.
                {"type": "integer", "minimum": 1, "maximum": selectors.TREE_MAX_DEPTH},
                required=False,
                description=f"Levels below the post (default {selectors.TREE_DEFAULT_DEPTH}, "
                f"1 to {selectors.TREE_MAX_DEPTH}).",
            )
        ],
        responses={200: RemixTreeOut, **error_responses(400, 404)},
        description=f"Descendants as a tree, newest first on each level, at most "
        f"{selectors.TREE_MAX_NODES} nodes (`truncated` says the cap cut it). Page further "
        "with /posts/{id}/remixes; `remix_count` says how many remixes a node has in all.",
    )
    def get(self, request: Request, post_id) -> Response:
        depth = _depth(request)
        post = post_visible(user=request.user, post_id=post_id)
        tree = selectors.remix_tree(user=request.user, post=post, depth=depth)
        annotate_posts(tree.nodes, viewer=request.user)
        rows = RemixTreeNodeOut(tree.nodes, many=True, context={"request": request}).data
        data = {row["id"]: row for row in rows}
        count = 0

        def render(node: selectors.TreeNode) -> dict[str, Any]:
            nonlocal count
            count += 1
            out = (
                dict(data[str(node.id)])
                if node.post is not None
                else _placeholder(node.id, node.depth)
            )
            out["children"] = [render(child) for child in node.children]
            return out

        root = render(tree.root)
        return Response(
            {"root": root, "depth": depth, "truncated": tree.truncated, "node_count": count - 1}
        )


def _depth(request: Request) -> int:
    raw = request.query_params.get("depth")
    if raw in (None, ""):
        return selectors.TREE_DEFAULT_DEPTH
    try:
        depth = int(raw)
    except ValueError:
        depth = 0
    if not 1 <= depth <= selectors.TREE_MAX_DEPTH:
        raise Invalid(
            f"depth must be 1 to {selectors.TREE_MAX_DEPTH}.",
            fields={"depth": [f"An integer from 1 to {selectors.TREE_MAX_DEPTH}."]},
        )
    return depth

"""The Following and Latest feeds, and the item envelope every feed kind shares.

Both are keyset pages on `(created_at, id)`, so concurrent posting never makes a page repeat or
skip an item. Following reads the viewer's Redis inbox (feed.inbox) and falls back to the
database when the inbox is missing, truncated or Redis is down; both paths produce the same
cursor, so a client can cross from one to the other mid-scroll.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import redis
from django.http import HttpResponse
from rest_framework.request import Request

from config.core.errors import Invalid
from config.core.pagination import (
    cursor_scope,
    decode_cursor,
    encode_cursor,
    parse_limit,
)
from config.core.stamps import stamps_queue

from . import inbox, postcache
from .hydrate import RawJSON, Row, json_bytes, posts_json, posts_page
from .serving import serve_ids_make

ORDER = ("-created_at", "-id")
CURSOR_TYPES = (datetime, uuid.UUID)


@dataclass
class FeedPage:
    items: list[dict[str, Any]]
    cursor: str | None


class PostItem(dict):
    """A `{"kind": "post", "post": RawJSON, "serve_id": str, "reason": str}` item, keys in that
    order: only `post_items` makes them, so `feed_response` can write one by concatenation."""


def post_items(rows: list[Row], reasons: list[str], *, request: Request) -> list[dict]:
    """The `{"kind": "post", ...}` items of a page (feed.hydrate), a fresh serve_id per item.
    The post is already JSON (`feed.hydrate.RawJSON`); `feed_response` writes the page."""
    data = posts_json(rows, request=request)
    serve_ids = serve_ids_make(user_id=request.user.pk, reasons=reasons)
    return [
        PostItem(kind="post", post=row, serve_id=serve_id, reason=reason)
        for row, reason, serve_id in zip(data, reasons, serve_ids, strict=True)
    ]


# Strings JSON writes as they are, between quotes: a serve_id and its reason code always are.
_VERBATIM = re.compile(r"[A-Za-z0-9_.-]*")


def _item_json(item: dict) -> bytes:
    if type(item) is PostItem and type(item["post"]) is RawJSON:
        serve_id, reason = item["serve_id"], item["reason"]
        if _VERBATIM.fullmatch(serve_id) and _VERBATIM.fullmatch(reason):
            return b'{"kind":"post","post":%b,"serve_id":"%b","reason":"%b"}' % (
                item["post"],
                serve_id.encode(),
                reason.encode(),
            )
    return json_bytes(item)


def feed_response(items: list[dict], next_url: str | None) -> HttpResponse:
    """A feed page as DRF's JSON renderer would write it, with the posts' JSON spliced in.

    Each post item is written by concatenation (`_item_json`): walking every item through
    `json_bytes`'s marker pass cost more than the rest of the page's JSON (docs/bench-feed.md)."""
    body = b'{"results":[%b],"next":%b}' % (
        b",".join([_item_json(item) for item in items]),
        json_bytes(next_url),
    )
    return HttpResponse(body, content_type="application/json")


def feed_scope(request: Request, kind: str) -> str:
    """Each feed kind seals its own cursors: a Latest cursor does not open Following."""
    return cursor_scope(f"feed.{kind}", request)


def _cursor(request: Request, kind: str) -> list | None:
    raw = request.query_params.get("cursor")
    return decode_cursor(raw, scope=feed_scope(request, kind), types=CURSOR_TYPES) if raw else None


def _db_page(
    user, before: list | None, limit: int, *, following: bool = False
) -> tuple[list[Row], bool]:
    """A keyset page newest first, straight from the database: one statement."""
    rows = posts_page(
        viewer_id=user.pk,
        before=tuple(before) if before is not None else None,
        limit=limit + 1,
        followed_by=user.pk if following else None,
    )
    return rows[:limit], len(rows) > limit


def rows_by_ids(
    viewer_id,
    ids: list,
    *,
    followed: bool = False,
    stamps: dict | None = None,
    known: dict | None = None,
) -> list[Row]:
    """The visible posts among `ids`, in that order (`followed`: by authors the viewer
    follows): from this process's caches when their stamps allow (feed.postcache), else one
    statement. `stamps`: some read already in this request; `known`: the viewer's likes of
    some of the posts, with no block either way (postcache.rows_for)."""
    rows = None
    if postcache.enabled():
        rows = postcache.rows_for(viewer_id, ids, followed=followed, stamps=stamps, known=known)
    if rows is None:
        rows = posts_page(viewer_id=viewer_id, ids=ids, followed_by=viewer_id if followed else None)
    return rows


# Where `feed_preload` leaves, on the DRF request, Latest's stamps and Following's first inbox
# read (with its stamps).
PRELOADED_STAMPS = "_riff_feed_stamps"
PRELOADED_INBOX = "_riff_feed_inbox"


def feed_preload(request: Request, batch, user_id):
    """What a feed page reads from Redis first, queued on token authentication's round trip
    (accounts.authentication): Latest's stamps, Following's inbox, For You's opening
    (feed.ranking.for_you_preload), each with the stamps of the page's posts. A page served
    from the caches then makes no round trip of its own (Latest, Following) or one (For You,
    its closing writes).
    Returns what keeps the replies on the request; None for requests the view will refuse (it
    says why)."""
    kind = request.query_params.get("kind", "for_you")
    if kind == "for_you":
        from .ranking import for_you_preload  # ranking builds on this module

        return for_you_preload(request, batch, user_id)
    if kind not in ("latest", "following"):
        return None
    try:
        limit, before = parse_limit(request), _cursor(request, kind)
    except Invalid:
        return None
    if kind == "following":
        # The inbox's entries with the stamps of their posts, their authors and the viewer.
        scan = _inbox_start(before)
        at = inbox.read_queue(batch, user_id=user_id, before=scan, count=limit + 1)

        def keep_inbox(replies) -> None:
            try:
                reply = replies.reply(at)
            except redis.RedisError:  # the page reads the inbox again, or the database
                reply = None
            setattr(request, PRELOADED_INBOX, (scan, limit + 1, reply))

        return keep_inbox
    if not postcache.enabled():
        return None
    start = tuple(before) if before is not None else None
    take = stamps_queue(batch, postcache.latest_keys(user_id, start, limit + 1))

    def keep(replies: list) -> None:
        setattr(request, PRELOADED_STAMPS, take(replies))

    return keep


def _inbox_start(before: list | None) -> tuple | None:
    """Where a Following page's inbox scan starts: (score, id) of its cursor."""
    return (before[0].timestamp(), str(before[1])) if before else None


def _inbox_read(request: Request, user, scan, count: int):
    """`inbox.read`, answered from the read that rode authentication's round trip when it is
    the same read and found the inbox."""
    pre = getattr(request, PRELOADED_INBOX, None)
    if pre is not None:
        setattr(request, PRELOADED_INBOX, None)  # only the first read of the page
        pre_scan, pre_count, reply = pre
        if (pre_scan, pre_count) == (scan, count):
            got = inbox.read_parse(reply, user_id=user.pk)
            if got is not None:
                return got
    return inbox.read(user=user, before=scan, count=count)


def latest_page(request: Request) -> FeedPage:
    limit, before = parse_limit(request), _cursor(request, "latest")
    rows = None
    if postcache.enabled():
        start = tuple(before) if before is not None else None
        stamps = getattr(request, PRELOADED_STAMPS, None)
        rows = postcache.latest_rows(request.user.pk, start, limit + 1, stamps=stamps)
    if rows is None:
        posts, more = _db_page(request.user, before, limit)
    else:
        posts, more = rows[:limit], len(rows) > limit
    return _page(request, posts, ["latest"] * len(posts), more, kind="latest")


def following_page(request: Request) -> FeedPage:
    user, limit, before = request.user, parse_limit(request), _cursor(request, "following")
    want = limit + 1
    posts: list[Row] = []
    # Where the inbox scan stands: (score, id) of the last entry read, visible or not.
    scan = _inbox_start(before)
    use_db = True
    for _ in range(5):
        got = _inbox_read(request, user, scan, want - len(posts))
        if got is None:  # Redis unavailable: the database serves the page
            break
        # The stamps came with the entries (inbox.read_queue).
        entries, truncated, stamps = got
        asked = want - len(posts)
        if entries:
            ids = [pid for pid, _ in entries]
            # Visibility and the follow are checked again here: the inbox may hold posts since
            # removed, blocked, or by someone no longer followed.
            posts += rows_by_ids(user.pk, ids, followed=True, stamps=stamps)
            scan = (entries[-1][1], entries[-1][0])
        if len(posts) >= want:
            use_db = False
            break
        if len(entries) < asked:
            # Nothing older in the inbox; the database has more only if it was truncated.
            use_db = truncated
            break
    if use_db and len(posts) < want:
        start = [posts[-1].created_at, posts[-1].pk] if posts else before
        rest, _ = _db_page(user, start, want - len(posts), following=True)
        posts += rest
    more = len(posts) > limit
    posts = posts[:limit]
    return _page(request, posts, ["following"] * len(posts), more, kind="following")


def _page(
    request: Request, posts: list[Row], reasons: list[str], more: bool, *, kind: str
) -> FeedPage:
    cursor = None
    if more and posts:
        last = posts[-1]
        cursor = encode_cursor([last.created_at, last.pk], scope=feed_scope(request, kind))
    return FeedPage(items=post_items(posts, reasons, request=request), cursor=cursor)

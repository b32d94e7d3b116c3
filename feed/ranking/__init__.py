"""For You ranking: sources -> scoring -> re-ranking -> snapshot -> creation cards.

The first page of a session builds the ranked order once (a fixed number of queries, see
`build_order`) and stores it in Redis (ranking.snapshot); every page, the first included, is a
slice of it, so pages never repeat or skip. Cards are woven in as a page is served, because
their policy reacts to what the viewer did since the order was built. docs/feed.md has the
whole story, weights included.
"""

from __future__ import annotations

import logging

import redis
from django.conf import settings
from django.utils import timezone
from rest_framework.request import Request

from accounts.selectors import blocked_user_ids
from config.core.errors import backend_unavailable
from config.core.pagination import cursor_opens, decode_cursor, encode_cursor, parse_limit
from config.core.redis import degraded

from ..feeds import CURSOR_TYPES, FeedPage, feed_scope, latest_page, post_items
from ..selectors import posts_visible_to
from .cards import card_item, plan_load, plan_save
from .rerank import rerank
from .scoring import score_all
from .snapshot import snapshot_read, snapshot_save
from .sources import context_for, gather, load_candidates

logger = logging.getLogger(__name__)

# A page reads at most this many slices of the snapshot (posts dropped since the snapshot was
# built are skipped), which bounds the queries per page.
MAX_SLICES = 3


def build_order(user) -> list[tuple[str, str]]:
    """The ranked `(post_id, reason)` list of a new session."""
    ctx = context_for(user)
    cands = load_candidates(ctx, gather(ctx))
    score_all(cands, now=ctx.now, steer=ctx.steer)
    ranked = rerank(
        cands,
        size=settings.RIFF_FEED_SNAPSHOT_SIZE,
        cap=settings.RIFF_FEED_AUTHOR_CAP,
        window=settings.RIFF_FEED_AUTHOR_WINDOW,
        decay=settings.RIFF_FEED_AUTHOR_DECAY,
        diversity=settings.RIFF_FEED_DIVERSITY,
        in_network_share=settings.RIFF_FEED_IN_NETWORK_SHARE if ctx.personalized else 0.0,
    )
    return [(str(c.id), c.reason) for c in ranked]


def for_you_page(request: Request) -> FeedPage:
    raw = request.query_params.get("cursor")
    if raw and cursor_opens(raw, scope=feed_scope(request, "latest"), types=CURSOR_TYPES):
        # The previous page was Latest served in place of For You (Redis was down, below):
        # that scroll goes on as Latest rather than failing on a cursor For You did not mint.
        return latest_page(request)
    try:
        return _for_you_page(request)
    except redis.RedisError as exc:
        if raw:
            # The cursor names a snapshot that lives in Redis alone: no page can continue it,
            # and restarting the scroll from the top would repeat what the viewer has seen.
            logger.warning("For You page refused: its snapshot can't be read (%s)", exc)
            raise backend_unavailable() from exc
        # No snapshot store: Latest is stable under keyset paging, For You is not.
        degraded("feed_for_you", "(serving Latest)")
        return latest_page(request)


def _for_you_page(request: Request) -> FeedPage:
    user, limit = request.user, parse_limit(request)
    raw = request.query_params.get("cursor")
    entries, session, offset = None, None, 0
    if raw:
        session, offset = decode_cursor(raw, scope=feed_scope(request, "for_you"), types=(str, int))
        entries = snapshot_read(user_id=user.pk, session=session)
    if entries is None:
        # First page, or the session expired: a fresh order (seen posts sink to its end).
        entries = build_order(user)
        session, offset = snapshot_save(user_id=user.pk, entries=entries), 0
    plan = plan_load(user)
    blocked = blocked_user_ids(user)
    posts, reasons, slots = [], [], []  # slots: ("post", index) or ("card", item)
    for _ in range(MAX_SLICES):
        if len(slots) >= limit or offset >= len(entries):
            break
        chunk = entries[offset : offset + limit - len(slots) + 5]
        visible = {
            str(p.pk): p
            for p in posts_visible_to(user, blocked=blocked).filter(
                pk__in=[pid for pid, _ in chunk]
            )
        }
        for pid, reason in chunk:
            if len(slots) >= limit:
                break
            offset += 1
            post = visible.get(pid)
            if post is None:
                continue
            slots.append(("post", len(posts)))
            posts.append(post)
            reasons.append(reason)
            plan.note_post()
            if plan.due and len(slots) < limit:
                card = card_item(plan, posts)
                if card is not None:
                    slots.append(("card", card))
    had_card = any(kind == "card" for kind, _ in slots)
    plan_save(plan, card_served_at=timezone.now() if had_card else None)
    post_rows = post_items(posts, reasons, request=request)
    items = [post_rows[value] if kind == "post" else value for kind, value in slots]
    cursor = None
    if offset < len(entries):
        cursor = encode_cursor([session, offset], scope=feed_scope(request, "for_you"))
    return FeedPage(items=items, cursor=cursor)

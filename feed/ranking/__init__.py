"""For You ranking: sources -> scoring -> re-ranking -> snapshot -> creation cards.

The first page of a session builds the ranked order once (a fixed number of queries, see
`build_order`) and stores it in Redis (ranking.snapshot); every page, the first included, is a
slice of it, so pages never repeat or skip. Cards are woven in as a page is served, because
their policy reacts to what the viewer did since the order was built. docs/feed.md has the
whole story, weights included.
"""

from __future__ import annotations

import logging
from typing import NamedTuple

import redis
from django.conf import settings
from django.utils import timezone
from rest_framework.request import Request

from config.core.errors import BACKEND_DOWN_ERRORS, Invalid, backend_unavailable
from config.core.pagination import cursor_opens, decode_cursor, encode_cursor, parse_limit
from config.core.redis import Batch, degraded, publish, redis_client

from ..feeds import CURSOR_TYPES, FeedPage, feed_scope, latest_page, post_items, rows_by_ids
from ..models import Like
from .cards import card_item, plan_load, plan_save, plan_state_parse, plan_state_read
from .rerank import rerank
from .scoring import score_all
from .snapshot import (
    Current,
    Slice,
    advance,
    current,
    current_open_parse,
    current_open_read,
    order_facts_now,
    snapshot_save,
    snapshot_size_read,
    snapshot_slice,
    snapshot_slice_read,
    snapshot_slice_stamped_parse,
)
from .sources import context_for, gather, load_candidates

logger = logging.getLogger(__name__)

# A page reads at most this many slices of the snapshot (posts dropped since the snapshot was
# built are skipped), which bounds the queries per page.
MAX_SLICES = 3


class Order(NamedTuple):
    """A ranked order: its entries `(post_id, reason, author_id, liked)` and the viewer's
    stamps its facts were read under (ranking.snapshot.order_facts_now)."""

    entries: list[tuple[str, str, str, str]]
    facts: str


def build_order(user) -> Order:
    """The ranked order of a new session."""
    # Taken before anything is read: the likes below and the blocks the sources skip hold
    # while these stamps do.
    facts = order_facts_now(user.pk)
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
    ids = [c.id for c in ranked]
    liked = set(
        Like.objects.filter(user=user, post_id__any=ids).values_list("post_id", flat=True)
        if ids
        else ()
    )
    # The author and the like ride along for the page (ranking.snapshot: its stamps, and
    # the viewer's like while the facts hold).
    return Order(
        entries=[
            (str(c.id), c.reason, str(c.author_id), "1" if c.id in liked else "") for c in ranked
        ],
        facts=facts,
    )


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


def session_start(user, *, limit: int, cur: Current | None | bool = False) -> tuple[str, int, int]:
    """`(session, offset, size)` where a new scroll session begins.

    The viewer's current order is used when it has at least a page left and is younger than
    `RIFF_FEED_ORDER_MAX_AGE_SECONDS`: the session continues from where the last one stopped,
    and a worker re-ranks it for the next session once it is `RIFF_FEED_ORDER_REFRESH_SECONDS`
    old or has fewer than `RIFF_FEED_ORDER_LOW_PAGES` pages left after this one (so a viewer
    who keeps scrolling finds a new order ready instead of waiting for one). Otherwise it is
    ranked here, in the request (first visit, stale, used up, or dropped by a preference change
    or a "see less"). `cur`: the current order, when the caller has read it already."""
    if cur is False:
        cur = current(user_id=user.pk)
    if (
        cur is not None
        and cur.size - cur.pos >= limit
        and cur.age < settings.RIFF_FEED_ORDER_MAX_AGE_SECONDS
    ):
        left = cur.size - cur.pos - limit  # after this page
        if (
            cur.age >= settings.RIFF_FEED_ORDER_REFRESH_SECONDS
            or left < limit * settings.RIFF_FEED_ORDER_LOW_PAGES
        ):
            order_refresh_soon(user.pk)
        return cur.session, cur.pos, cur.size
    order = build_order(user)
    session = snapshot_save(user_id=user.pk, entries=order.entries, facts=order.facts)
    return session, 0, len(order.entries)


def order_refresh_soon(user_id) -> None:
    """Asks a worker to re-rank the viewer's order, at most once a minute per viewer."""
    from ..tasks import feed_order_refresh

    try:
        if not redis_client().set(f"riff:fy:refreshing:{user_id}", 1, nx=True, ex=60):
            return
        publish(feed_order_refresh, str(user_id))
    except BACKEND_DOWN_ERRORS:
        # The order is still served; the next session asks again once the minute is over.
        degraded("feed_order_refresh", user_id)


# Where `for_you_preload` leaves, on the DRF request, the page's opening read.
PRELOADED_OPENING = "_riff_for_you_opening"


def _opening_queue(batch: Batch, *, user_id, session: str | None, offset: int, limit: int):
    """Queues a page's opening read on `batch`: where the scroll stands (its order's size, or
    the current order for a first page), the card state and the page's first slice (for a
    later page, from where its cursor says; for a first page, from where the current order
    stands). Returns what `_opening_parse` needs."""
    if session is not None:
        size_at = snapshot_size_read(batch, user_id=user_id, session=session)
        # The loop's first slice below: the same bounds, with its stamps (feed.postcache).
        slice_at = snapshot_slice_read(
            batch,
            user_id=user_id,
            session=session,
            start=offset,
            stop=offset + limit + 5,
            stamped=True,
        )
        positions = (size_at, slice_at)
    else:
        positions = (current_open_read(batch, user_id=user_id, count=limit + 5, stamped=True),)
    return (session, offset, limit), positions, plan_state_read(batch, user_id=user_id)


def _opening_parse(replies, positions, state_at):
    return tuple(
        replies.reply(at) if at is not None else None for at in positions
    ), plan_state_parse(replies, state_at)


def for_you_preload(request: Request, batch: Batch, user_id):
    """Queues the page's opening read on token authentication's round trip (feed.apis'
    preload, as for Latest and Following): a page whose viewer the process knows then opens
    without a round trip of its own. Returns what keeps the replies on the request, or None
    for a request the view will refuse or serve as Latest."""
    try:
        limit = parse_limit(request)
        raw = request.query_params.get("cursor")
        session, offset = None, 0
        if raw:
            session, offset = decode_cursor(
                raw, scope=feed_scope(request, "for_you"), types=(str, int)
            )
    except Invalid:
        return None
    asked, positions, state_at = _opening_queue(
        batch, user_id=user_id, session=session, offset=offset, limit=limit
    )

    def keep(replies) -> None:
        setattr(request, PRELOADED_OPENING, (asked, _opening_parse(replies, positions, state_at)))

    return keep


def _for_you_page(request: Request) -> FeedPage:
    user, limit = request.user, parse_limit(request)
    raw = request.query_params.get("cursor")
    session, offset, total = None, 0, 0
    if raw:
        session, offset = decode_cursor(raw, scope=feed_scope(request, "for_you"), types=(str, int))
    # One round trip opens the page (`_opening_queue`), unless it rode authentication's.
    pre = getattr(request, PRELOADED_OPENING, None)
    if pre is not None and pre[0] == (session, offset, limit):
        opened, state = pre[1]
    else:
        batch = Batch(redis_client())
        _, positions, state_at = _opening_queue(
            batch, user_id=user.pk, session=session, offset=offset, limit=limit
        )
        opened, state = _opening_parse(batch.execute(), positions, state_at)
    cur: Current | None | bool = False
    # The first slice, read with the page's opening (with its stamps and its order's facts).
    prefetched: Slice | None = None
    opening: Slice | None = None
    if session is not None:
        total = int(opened[0] or 0)
        prefetched = snapshot_slice_stamped_parse(opened[1], user_id=user.pk)
        if not total:
            # The session expired: a fresh start (what was seen sinks, see session_start).
            session, prefetched = None, None
    else:
        cur, opening = current_open_parse(opened[0], user_id=user.pk)
    if session is None:
        session, offset, total = session_start(user, limit=limit, cur=cur)
        if cur and opening is not None and (session, offset) == (cur.session, cur.pos):
            # The session continues the current order: its first slice came with the opening.
            prefetched = opening
    plan = plan_load(user, state=state)
    posts, reasons, slots = [], [], []  # slots: ("post", index) or ("card", item)
    for _ in range(MAX_SLICES):
        if len(slots) >= limit or offset >= total:
            break
        stop = offset + limit - len(slots) + 5
        if prefetched is not None:
            read, prefetched = prefetched, None
        else:
            read = Slice(
                entries=snapshot_slice(user_id=user.pk, session=session, start=offset, stop=stop)
            )
        chunk = read.entries
        if not chunk:
            break
        # Visibility is decided again as the slice is served: a post removed, or an author
        # blocked, since the order was ranked is skipped here (from the process's caches
        # under their stamps, feed.postcache, else feed.hydrate's one statement).
        ids = [pid for pid, _ in chunk]
        rows = rows_by_ids(user.pk, ids, stamps=read.stamps, known=read.known)
        visible = {str(row.id): row for row in rows}
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
    if raw and total - offset < limit * settings.RIFF_FEED_ORDER_LOW_PAGES:
        # A scroll near the end of its order: the next one is ranked on a worker meanwhile, so
        # the first page after this scroll needn't rank in the request. (Should a newer order
        # have replaced this one already, the re-rank is wasted once; telling takes a read.)
        order_refresh_soon(user.pk)
    had_card = any(kind == "card" for kind, _ in slots)
    # ... and one closes it: the card state and how far the viewer read, together.
    batch = Batch(redis_client())
    plan_save(plan, card_served_at=timezone.now() if had_card else None, batch=batch)
    advance(user_id=user.pk, session=session, offset=offset, batch=batch)
    batch.execute().check()
    post_rows = post_items(posts, reasons, request=request)
    items = [post_rows[value] if kind == "post" else value for kind, value in slots]
    cursor = None
    if offset < total:
        cursor = encode_cursor([session, offset], scope=feed_scope(request, "for_you"))
    return FeedPage(items=items, cursor=cursor)

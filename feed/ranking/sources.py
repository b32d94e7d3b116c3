"""Candidate sources for For You, and the loading of candidates with their signals.

Each source is one bounded query that returns post ids, most relevant first. A post found by
several sources keeps every reason (scoring uses them all); the item's `reason` is the most
specific one (`REASON_PRIORITY`). Visibility is not decided here: candidates are loaded once
under `feed.hydrate.VISIBLE`, the SQL twin of `feed.selectors.posts_visible_to` (a test holds
the two to the same answer).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np
from django.conf import settings
from django.core.cache import cache
from django.db.models import Count, Q
from django.utils import timezone

from accounts.models import Follow, User
from accounts.selectors import blocked_user_ids
from cameos.consent import usable_cameos
from config.core.compiled import CompiledQuery
from config.core.lookups import uuid_array  # and `__any` (long id lists), registered
from config.core.sql import fetchall
from generation.models import Generation

from ..embeddings import from_bytes
from ..hydrate import VISIBLE, cameo_ids_decoded
from ..models import EventKind, FeedEvent, FeedPreference, Like, Post, PostState
from ..selectors import post_counts

# Most specific first: the reason shown on an item found by several sources.
REASON_PRIORITY = (
    "cameo_graph",
    "remix_lineage",
    "following",
    "steering",
    "trending",
    "cold_start",
    "latest",
)
# Sources a non-personalised feed may use: nothing derived from the viewer's history.
UNPERSONALIZED = ("trending", "latest")

PER_SOURCE = 150
STEER_POOL = 1000
STEER_MIN_COSINE = 0.15
TRENDING_HOURS = 72
COLD_START_HOURS = 48


@dataclass
class Context:
    """What every source needs about the viewer, read once per snapshot build."""

    user: User
    now: datetime
    blocked: set
    followees: set
    personalized: bool
    steer: np.ndarray | None
    seen: set = field(default_factory=set)


@dataclass
class Candidate:
    id: object
    author_id: object
    created_at: datetime
    allow_remix: bool
    cameo_ids: list
    embedding: np.ndarray | None
    reasons: set
    in_network: bool = False
    seen: bool = False
    views: int = 0
    likes: int = 0
    remixes: int = 0
    cameo_uses: int = 0
    completes: int = 0
    see_less: int = 0
    author_see_less: bool = False
    score: float = 0.0

    @property
    def reason(self) -> str:
        return next(r for r in REASON_PRIORITY if r in self.reasons)


def preferences_get(user: User) -> FeedPreference | None:
    return FeedPreference.objects.filter(user=user).first()


# A ranking's queries are built with the ORM, each compiled once per process
# (config.core.compiled: building and compiling them cost more than running them).
def _flat(rows: list[tuple]) -> list:
    return [row[0] for row in rows]


_FOLLOWEES = CompiledQuery(
    lambda viewer: Follow.objects.filter(follower_id=viewer).values_list("followee_id"),
    viewer="uuid",
)
_SEEN = CompiledQuery(
    lambda viewer, since: (
        FeedEvent.objects.filter(user_id=viewer, kind=EventKind.IMPRESSION, created_at__gte=since)
        .values_list("post_id")
        .distinct()
    ),
    viewer="uuid",
    since="datetime",
)


_PREFERENCES = CompiledQuery(
    lambda viewer: FeedPreference.objects.filter(user_id=viewer).values_list(
        "personalized", "steer_embedding"
    ),
    viewer="uuid",
)


def context_for(user: User) -> Context:
    # (personalized, steer embedding) of `preferences_get`, without building the model
    pref = next(iter(_PREFERENCES.rows(viewer=user.pk)), None)
    personalized = pref[0] if pref is not None else True
    now = timezone.now()
    seen_since = now - timedelta(hours=settings.RIFF_FEED_SEEN_HOURS)
    return Context(
        user=user,
        now=now,
        blocked=blocked_user_ids(user),
        followees=set(_flat(_FOLLOWEES.rows(viewer=user.pk))),
        personalized=personalized,
        steer=from_bytes(pref[1]) if pref is not None and personalized else None,
        seen=set(_flat(_SEEN.rows(viewer=user.pk, since=seen_since))),
    )


def _live(since, viewer, blocked):
    """Recent live posts not by the viewer or anyone blocked either way. `blocked` is always
    excluded, empty or not (`<> ALL('{}')` holds for every row): one SQL text for both."""
    return (
        Post.objects.filter(state=PostState.LIVE, created_at__gte=since)
        .exclude(author_id=viewer)
        .exclude(author_id__any=blocked)
    )


_BASE_ARGS = {"since": "datetime", "viewer": "uuid", "blocked": "uuids"}


def _newest(qs, limit: int = PER_SOURCE):
    return qs.order_by("-created_at").values_list("id")[:limit]


def _base_args(ctx: Context, *, hours: int | None = None) -> dict:
    """The arguments of `_live` for this viewer: posts of the candidate window (or the last
    `hours`)."""
    since = ctx.now - (
        timedelta(hours=hours) if hours else timedelta(days=settings.RIFF_FEED_CANDIDATE_DAYS)
    )
    return {"since": since, "viewer": ctx.user.pk, "blocked": ctx.blocked}


def _base(ctx: Context, *, hours: int | None = None):
    """Recent live posts not by the viewer or anyone blocked either way (ids only)."""
    return _live(**_base_args(ctx, hours=hours))


_FOLLOWING = CompiledQuery(
    lambda followees, **base: _newest(_live(**base).filter(author_id__any=followees)),
    followees="uuids",
    **_BASE_ARGS,
)


def source_following(ctx: Context) -> list:
    if not ctx.followees:
        return []
    return _flat(_FOLLOWING.rows(followees=ctx.followees, **_base_args(ctx)))


class _Viewer:
    """What `usable_cameos` reads of a user: their id."""

    is_authenticated = True

    def __init__(self, pk) -> None:
        self.pk = pk


# The consent rule itself (cameos.consent.usable_cameos), compiled once.
_GRAPH_CAMEOS = CompiledQuery(
    lambda viewer, followees: (
        usable_cameos(_Viewer(viewer))
        .filter(Q(owner_id=viewer) | Q(owner_id__any=followees))
        .values_list("pk")[:200]
    ),
    viewer="uuid",
    followees="uuids",
)
_GRAPH_POSTS = CompiledQuery(
    lambda cameos, **base: _newest(_live(**base).filter(cameo_ids__has_any_keys=cameos)),
    cameos="strs",
    **_BASE_ARGS,
)


def source_cameo_graph(ctx: Context) -> list:
    """Posts showing the viewer's own cameos or the cameos of people they follow that the
    consent rule lets them use (so every such post is one they could riff on themselves)."""
    cameo_ids = [
        str(pk) for pk in _flat(_GRAPH_CAMEOS.rows(viewer=ctx.user.pk, followees=ctx.followees))
    ]
    if not cameo_ids:
        return []
    return _flat(_GRAPH_POSTS.rows(cameos=cameo_ids, **_base_args(ctx)))


def _roots(viewer):
    made = (
        Post.objects.filter(author_id=viewer)
        .order_by("-created_at")
        .values_list("root_id", flat=True)[:200]
    )
    liked = (
        Like.objects.filter(user_id=viewer)
        .order_by("-created_at")
        .values_list("post__root_id", flat=True)[:200]
    )
    remixed = Post.objects.filter(
        pk__in=Generation.objects.filter(owner_id=viewer, remix_of_id__isnull=False)
        .order_by("-created_at")
        .values("remix_of_id")[:200]
    ).values_list("root_id", flat=True)
    # a UNION of three index scans (an OR of IN-subqueries reads the whole post table)
    return made.union(liked, remixed)


_ROOTS = CompiledQuery(_roots, viewer="uuid")
_LINEAGE = CompiledQuery(
    lambda roots, **base: _newest(_live(**base).filter(root_id__any=roots)),
    roots="uuids",
    **_BASE_ARGS,
)


def source_remix_lineage(ctx: Context) -> list:
    """Other posts in the remix trees of what the viewer made, liked or remixed.

    The roots are read first (one query, at most 600 ids) and then passed as a list: with the
    subqueries inline the planner walks every recent post newest first and tests each against
    them, which at a million posts reads the whole candidate window; with a list it reads the
    trees through the root index."""
    roots = _flat(_ROOTS.rows(viewer=ctx.user.pk))
    if not roots:
        return []
    return _flat(_LINEAGE.rows(roots=roots, **_base_args(ctx)))


TRENDING_CACHE_KEY = "feed:trending:v1"
TRENDING_CACHE_SECONDS = 300
TRENDING_POOL = 500


def trending_compute(now: datetime | None = None) -> list:
    """The global trending list: live remixable posts with the most remixes and engagement
    events in the last few days, hottest first. Scans the window's remixes and events, so it
    runs at most once per `TRENDING_CACHE_SECONDS` (beat keeps it warm); viewers only read it."""
    now = now or timezone.now()
    since = now - timedelta(hours=TRENDING_HOURS)
    remixed = dict(
        Post.objects.filter(
            created_at__gte=since,
            state=PostState.LIVE,
            remix_of__isnull=False,
            remix_of__state=PostState.LIVE,
            remix_of__allow_remix=True,
        )
        .values("remix_of_id")
        .annotate(n=Count("id"))
        .order_by("-n")
        .values_list("remix_of_id", "n")[:TRENDING_POOL]
    )
    engaged = dict(
        FeedEvent.objects.filter(
            created_at__gte=since,
            kind__in=[EventKind.IMPRESSION, EventKind.COMPLETED, EventKind.SHARE],
        )
        .values("post_id")
        .annotate(n=Count("id"))
        .order_by("-n")
        .values_list("post_id", "n")[: TRENDING_POOL * 2]
    )
    remixable = set(
        Post.objects.filter(
            pk__in=list(engaged), state=PostState.LIVE, allow_remix=True
        ).values_list("pk", flat=True)
    )
    # A remix is worth far more than a view here too: trending means "people riff on it".
    heat = {pid: 10 * n for pid, n in remixed.items()}
    for pid, n in engaged.items():
        if pid in remixable:
            heat[pid] = heat.get(pid, 0) + n
    return sorted(heat, key=heat.get, reverse=True)[:TRENDING_POOL]


def trending_refresh() -> list:
    ids = trending_compute()
    cache.set(TRENDING_CACHE_KEY, [str(i) for i in ids], TRENDING_CACHE_SECONDS * 3)
    return ids


def source_trending(ctx: Context) -> list:
    """The shared trending list (per-viewer filtering happens in load_candidates).

    A Redis error propagates on purpose, here and in `source_cold_start`: For You can't keep a
    snapshot without Redis and serves Latest instead (ranking.for_you_page), so computing the
    list inline would put the feed's heaviest queries on every request of an outage for nothing.
    """
    ids = cache.get(TRENDING_CACHE_KEY)
    if ids is None:
        ids = trending_refresh()
    return [uuid.UUID(str(i)) for i in ids[:PER_SOURCE]]


def source_steering(ctx: Context) -> list:
    if ctx.steer is None:
        return []
    rows = list(
        _base(ctx)
        .exclude(embedding__isnull=True)
        .order_by("-created_at")
        .values_list("id", "embedding")[:STEER_POOL]
    )
    vectors = [(pid, from_bytes(raw)) for pid, raw in rows]
    vectors = [(pid, v) for pid, v in vectors if v is not None]
    if not vectors:
        return []
    sims = np.stack([v for _, v in vectors]) @ ctx.steer
    order = np.argsort(-sims)
    return [vectors[i][0] for i in order[:PER_SOURCE] if sims[i] >= STEER_MIN_COSINE]


COLD_START_POOL = 400
COLD_START_CACHE_KEY = "feed:cold_start:v1"
COLD_START_CACHE_SECONDS = 180


def cold_start_compute(now: datetime | None = None) -> list:
    """New posts from small creators, so a first post gets a first audience: the newest posts
    of the window whose authors have few followers. Follower counts are read only for the
    authors of those posts, and the list is shared by every viewer for a couple of minutes
    (popular authors have many followers to count; no viewer should pay for that)."""
    now = now or timezone.now()
    recent = list(
        Post.objects.filter(
            state=PostState.LIVE, created_at__gte=now - timedelta(hours=COLD_START_HOURS)
        )
        .order_by("-created_at")
        .values_list("id", "author_id")[:COLD_START_POOL]
    )
    authors = {author for _, author in recent}
    if not authors:
        return []
    big = set(
        Follow.objects.filter(followee_id__in=authors)
        .values("followee_id")
        .annotate(n=Count("id"))
        .filter(n__gte=settings.RIFF_FEED_SMALL_CREATOR_FOLLOWERS)
        .values_list("followee_id", flat=True)
    )
    return [pid for pid, author in recent if author not in big][:100]


def cold_start_refresh() -> list:
    ids = [str(i) for i in cold_start_compute()]
    cache.set(COLD_START_CACHE_KEY, ids, COLD_START_CACHE_SECONDS)
    return ids


def source_cold_start(ctx: Context) -> list:
    """The shared cold-start list (beat refreshes it every minute; a viewer computes it only
    when the cache is empty)."""
    ids = cache.get(COLD_START_CACHE_KEY)
    if ids is None:
        ids = cold_start_refresh()
    # The viewer's own posts and blocked authors are dropped when candidates load.
    return [uuid.UUID(i) for i in ids[:40]]


_LATEST = CompiledQuery(lambda **base: _newest(_live(**base), 200), **_BASE_ARGS)


def source_latest(ctx: Context) -> list:
    return _flat(_LATEST.rows(**_base_args(ctx)))


SOURCES = {
    "following": source_following,
    "cameo_graph": source_cameo_graph,
    "remix_lineage": source_remix_lineage,
    "trending": source_trending,
    "steering": source_steering,
    "cold_start": source_cold_start,
    "latest": source_latest,
}


def gather(ctx: Context) -> dict:
    """{post_id: {reasons}} over every source the viewer's preferences allow."""
    names = SOURCES if ctx.personalized else UNPERSONALIZED
    found: dict = {}
    for name in names:
        for pid in SOURCES[name](ctx):
            found.setdefault(pid, set()).add(name)
    return found


# The candidates a viewer may see (feed.hydrate.VISIBLE, the SQL twin of
# posts_visible_to, which a test holds to the same answer), not their own, by id: one
# prepared statement with the ids as one array (read through the ORM, preparing and
# converting ~1,000 rows' values was a third of a ranking's CPU).
_CANDIDATES_SQL = (
    "SELECT p.id, p.author_id, p.created_at, p.allow_remix, p.cameo_ids, p.embedding "  # noqa: S608
    "FROM feed_post p JOIN accounts_user a ON a.id = p.author_id "
    f"WHERE p.id = ANY(%(ids)s::uuid[]) AND p.author_id <> %(viewer)s AND {VISIBLE}"
)


_ATTEMPTS = CompiledQuery(
    lambda ids: (
        Generation.objects.filter(remix_of_id__any=ids)
        .values("remix_of_id")
        .annotate(
            n=Count("id", distinct=True),
            cameo=Count("id", filter=Q(cameo_links__isnull=False), distinct=True),
        )
        .values_list("remix_of_id", "n", "cameo")
    ),
    ids="uuids",
)
_DISLIKED = CompiledQuery(
    lambda viewer, since: Post.objects.filter(
        pk__in=FeedEvent.objects.filter(
            user_id=viewer, kind=EventKind.SEE_LESS, created_at__gte=since
        ).values("post_id")
    ).values_list("author_id"),
    viewer="uuid",
    since="datetime",
)


def load_candidates(ctx: Context, found: dict) -> list[Candidate]:
    """The visible candidates with the signals scoring needs: a fixed handful of queries."""
    if not found:
        return []
    rows = fetchall(_CANDIDATES_SQL, {"viewer": ctx.user.pk, "ids": uuid_array(found)})
    cands = [
        Candidate(
            id=pid,
            author_id=author,
            created_at=created,
            allow_remix=remixable,
            cameo_ids=list(cameo_ids_decoded(cameos)),
            embedding=from_bytes(raw),
            reasons=found[pid],
            in_network=author in ctx.followees,
            seen=pid in ctx.seen,
        )
        for pid, author, created, remixable, cameos, raw in rows
    ]
    ids = [c.id for c in cands]
    counts = post_counts(ids)
    # {post id: (remix generations, those with a cameo)}
    attempts = {pid: (n, cameo) for pid, n, cameo in _ATTEMPTS.rows(ids=ids)}
    # Authors the viewer said "see less" of recently: their posts sink.
    disliked_authors = set(
        _flat(_DISLIKED.rows(viewer=ctx.user.pk, since=ctx.now - timedelta(days=30)))
    )
    for c in cands:
        count = counts.get(c.id) or {}
        attempted, with_cameo = attempts.get(c.id, (0, 0))
        c.views = count.get("views") or 0
        c.likes = count.get("likes") or 0
        # Every published remix started as a generation with remix_of, but counters are the
        # truth for posts whose generations were purged; take the larger.
        c.remixes = max(count.get("remixes") or 0, attempted)
        c.cameo_uses = with_cameo
        # all-time, like views: the rates compare counts over the same impressions
        c.completes = count.get("completes") or 0
        c.see_less = count.get("see_less") or 0
        c.author_see_less = c.author_id in disliked_authors
    return cands

"""The random shape of the seeded world, drawn with numpy before any row is written.

Each `draw_*` returns plain arrays indexed by user or post number; the writers
(`seeding.writers`) only format them. The draws run in a fixed order from one generator, so a
seed reproduces the same data, ids included: change the order of the calls and every id moves.

The shape is skewed the way social data is: a few prolific authors (Zipf-like author weights),
a heavy-tailed post popularity (log-normal, times an author factor) that decides which posts
get most of the likes, events and remixes, and follows concentrated on popular authors.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import numpy as np
from django.contrib.auth.hashers import make_password

from feed.models import COUNTER_SHARDS, EventKind

SEED_PREFIX = "seed_"
SEED_PASSWORD = "riff-seed-pass"  # noqa: S105 - synthetic benchmark users
DAY_MS = 86_400_000
# Posts with more engaging events than this spread their counts over all shards, the way
# concurrent writers would; quieter posts keep them in shard 0.
HOT_POST = 64
# A serve is one impression; what the viewer then did, each with its share of serves.
WATCHED_SHARE, COMPLETED_SHARE = 0.45, 0.45  # completed: a share of the watched ones
SEE_LESS_SHARE, SEE_MORE_SHARE, SHARE_SHARE = 0.02, 0.01, 0.03
# Events per serve on average (1 impression + the shares above), to size the serves drawn.
EVENTS_PER_SERVE = 1.7
# The event kinds of a serve's flag columns, in column order (see `draw_events`).
SERVE_EVENT_KINDS = np.array(
    [
        EventKind.IMPRESSION,
        EventKind.WATCHED,
        EventKind.COMPLETED,
        EventKind.SEE_LESS,
        EventKind.SEE_MORE,
        EventKind.SHARE,
    ],
    dtype=np.int64,
)
WATCH_KINDS = (EventKind.WATCHED, EventKind.COMPLETED)
# The feed a serve came from, and how often.
SERVE_REASONS = np.array(["for_you", "following", "latest"], dtype=object)
SERVE_REASON_WEIGHTS = np.array([0.6, 0.25, 0.15])

# Prompt words (order matters: a seed picks them by index).
_ADJ = [
    "red",
    "tiny",
    "giant",
    "glowing",
    "wooden",
    "paper",
    "neon",
    "rusty",
    "velvet",
    "frozen",
    "sleepy",
    "brave",
]
_NOUN = [
    "cat",
    "robot",
    "teapot",
    "dragon",
    "bicycle",
    "cactus",
    "lighthouse",
    "penguin",
    "clock",
    "balloon",
    "whale",
    "fox",
]
_VERB = [
    "dances",
    "rolls",
    "bounces",
    "sings",
    "juggles",
    "floats",
    "spins",
    "naps",
    "races",
    "paints",
    "sneaks",
    "glides",
]
_PLACE = [
    "on the moon",
    "in a kitchen",
    "under the sea",
    "on a rooftop",
    "in the desert",
    "at a train station",
    "in a snow globe",
    "on a skateboard ramp",
    "in a library",
    "at sunset",
]


@dataclass
class SeedSpec:
    users: int
    posts: int
    events: int
    follows_per_user: int = 50
    likes: int | None = None  # default: 2 per post
    remix_share: float = 0.10
    removed_share: float = 0.01
    days: int = 45  # posts span the last `days` days; events follow their post
    seed: int = 0

    @property
    def like_count(self) -> int:
        return self.likes if self.likes is not None else 2 * self.posts


@dataclass
class Clock:
    now: datetime
    now_ms: int
    posts_from_ms: int  # the first post's earliest time

    @classmethod
    def at(cls, now: datetime, *, days: int) -> Clock:
        now_ms = int(now.timestamp() * 1000)
        return cls(now=now, now_ms=now_ms, posts_from_ms=now_ms - days * DAY_MS)


# --- helpers ----------------------------------------------------------------------------------


def uuid7(ms: np.ndarray, rng: np.random.Generator) -> list[str]:
    """Time-ordered UUIDs (v7 layout) for creation times in ms: keeps primary-key inserts
    append-mostly, as a real app minting v7 ids would."""
    hi = rng.integers(0, 1 << 12, size=len(ms), dtype=np.int64).tolist()
    lo = rng.integers(0, 1 << 62, size=len(ms), dtype=np.int64).tolist()
    out = []
    for t, a, b in zip(ms.tolist(), hi, lo, strict=True):
        out.append(str(uuid.UUID(int=(t << 80) | (0x7 << 76) | (a << 64) | (0b10 << 62) | b)))
    return out


def iso(ms: np.ndarray) -> np.ndarray:
    """ISO-8601 UTC strings for epoch milliseconds (vectorised)."""
    return np.datetime_as_string(ms.astype("datetime64[ms]"), unit="ms", timezone="UTC")


def _zipf_weights(n: int, s: float, rng: np.random.Generator) -> np.ndarray:
    """Weights ∝ rank^-s over a random permutation of n items, normalised."""
    w = np.empty(n)
    w[rng.permutation(n)] = np.arange(1, n + 1, dtype=np.float64) ** -s
    return w / w.sum()


def _pick(weights: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    cdf = np.cumsum(weights)
    cdf /= cdf[-1]
    return np.minimum(np.searchsorted(cdf, rng.random(size), side="right"), len(cdf) - 1)


def _after(start_ms: np.ndarray, now_ms: int, rng: np.random.Generator) -> np.ndarray:
    """A time between each start and now, most of them soon after the start."""
    return start_ms + ((now_ms - start_ms) * rng.random(len(start_ms)) ** 3).astype(np.int64)


# --- users and follows ------------------------------------------------------------------------


@dataclass
class Users:
    n: int
    ms: np.ndarray  # joined, epoch ms, ascending
    ids: np.ndarray
    created: np.ndarray
    births: list[str]
    password: str  # one hash for all: hashing a million passwords would dominate the seed
    author_w: np.ndarray  # who posts: Zipf-like, a few prolific authors
    reader_w: np.ndarray  # who reads and likes: log-normal activity


def draw_users(spec: SeedSpec, clock: Clock, rng: np.random.Generator) -> Users:
    """Users joined 60 to 400 days before the first post."""
    n = spec.users
    ms = np.sort(
        rng.integers(clock.posts_from_ms - 400 * DAY_MS, clock.posts_from_ms - 60 * DAY_MS, size=n)
    )
    ids = np.array(uuid7(ms, rng), dtype=object)
    first, last = date(1965, 1, 1), date(2005, 1, 1)
    birth_days = rng.integers(0, (last - first).days, size=n)
    births = [(first + timedelta(days=int(d))).isoformat() for d in birth_days]
    author_w = _zipf_weights(n, 0.7, rng)
    reader_w = rng.lognormal(0.0, 1.0, size=n)
    reader_w /= reader_w.sum()
    return Users(
        n=n,
        ms=ms,
        ids=ids,
        created=iso(ms),
        births=births,
        password=make_password(SEED_PASSWORD),
        author_w=author_w,
        reader_w=reader_w,
    )


@dataclass
class Follows:
    n: int
    follower: np.ndarray  # user numbers
    followee: np.ndarray
    created: np.ndarray


def draw_follows(spec: SeedSpec, clock: Clock, users: Users, rng: np.random.Generator) -> Follows:
    """Each user follows ~follows_per_user people, mostly popular authors, never themselves."""
    n_users = users.n
    per_user = np.minimum(
        rng.poisson(spec.follows_per_user, size=n_users), max(0, n_users - 1)
    ).astype(np.int64)
    follower = np.repeat(np.arange(n_users, dtype=np.int64), per_user)
    popular = rng.random(len(follower)) < 0.7
    followee = np.where(
        popular,
        _pick(users.author_w, len(follower), rng),
        rng.integers(0, n_users, size=len(follower)),
    )
    pairs = np.unique(follower * n_users + followee)
    follower, followee = pairs // n_users, pairs % n_users
    keep = follower != followee
    follower, followee = follower[keep], followee[keep]
    n = len(follower)
    ms = np.maximum(users.ms[follower], users.ms[followee]) + rng.integers(0, 30 * DAY_MS, size=n)
    ms = np.minimum(ms, clock.now_ms)
    return Follows(n=n, follower=follower, followee=followee, created=iso(ms))


# --- posts, with their generations and videos -------------------------------------------------


@dataclass
class Posts:
    n: int
    ms: np.ndarray  # published, epoch ms, ascending
    author: np.ndarray  # user numbers
    pop: np.ndarray  # popularity weight
    live: np.ndarray
    allow_remix: np.ndarray
    is_remix: np.ndarray
    parent: np.ndarray  # post number, -1 for a root
    root: np.ndarray
    depth: np.ndarray
    ids: np.ndarray
    generation_ids: np.ndarray
    video_ids: np.ndarray
    created: np.ndarray
    generated: np.ndarray  # the generation was admitted 30 s before the post
    started: np.ndarray  # and claimed 2 s later
    rendered: np.ndarray  # the video was made 5 s before the post
    words: list[np.ndarray]
    generation_seed: list[int]

    def prompt(self, j: int) -> str:
        adj, noun, verb, place = (w[j] for w in self.words)
        return f"a {_ADJ[adj]} {_NOUN[noun]} {_VERB[verb]} {_PLACE[place]}"


def draw_posts(spec: SeedSpec, clock: Clock, users: Users, rng: np.random.Generator) -> Posts:
    """Posts in publish order; ~remix_share of them remix an earlier post, chosen by popularity
    among those that allow it (parents come first, so lineage is computed in one pass)."""
    n = spec.posts
    ms = np.sort(rng.integers(clock.posts_from_ms, clock.now_ms - 60_000, size=n))
    author = _pick(users.author_w, n, rng)
    author_factor = rng.lognormal(0.0, 0.7, size=users.n)
    pop = rng.lognormal(0.0, 1.8, size=n) * author_factor[author]
    live = rng.random(n) >= spec.removed_share
    allow_remix = rng.random(n) >= 0.05
    is_remix = rng.random(n) < spec.remix_share
    is_remix[0] = False
    parent = np.full(n, -1, dtype=np.int64)
    cum = np.cumsum(pop * allow_remix)
    idx = np.nonzero(is_remix)[0]
    upto = cum[idx - 1]
    ok = upto > 0
    idx, upto = idx[ok], upto[ok]
    is_remix[:] = False
    is_remix[idx] = True
    parent[idx] = np.minimum(
        np.searchsorted(cum, rng.random(len(idx)) * upto, side="right"), idx - 1
    )
    root = np.arange(n, dtype=np.int64)
    depth = np.zeros(n, dtype=np.int64)
    for j, p in zip(idx.tolist(), parent[idx].tolist(), strict=True):
        root[j], depth[j] = root[p], depth[p] + 1
    # A remix author remixes someone else's post more often than not (any user may).
    author[idx] = np.where(
        rng.random(len(idx)) < 0.9, _pick(users.author_w, len(idx), rng), author[idx]
    )
    ids = np.array(uuid7(ms, rng), dtype=object)
    generation_ids = np.array(uuid7(ms - 30_000, rng), dtype=object)
    video_ids = np.array(uuid7(ms - 5_000, rng), dtype=object)
    words = [rng.integers(0, len(v), size=n) for v in (_ADJ, _NOUN, _VERB, _PLACE)]
    generation_seed = rng.integers(0, 2**62, size=n).tolist()
    return Posts(
        n=n,
        ms=ms,
        author=author,
        pop=pop,
        live=live,
        allow_remix=allow_remix,
        is_remix=is_remix,
        parent=parent,
        root=root,
        depth=depth,
        ids=ids,
        generation_ids=generation_ids,
        video_ids=video_ids,
        created=iso(ms),
        generated=iso(ms - 30_000),
        started=iso(ms - 28_000),
        rendered=iso(ms - 5_000),
        words=words,
        generation_seed=generation_seed,
    )


# --- engagement -------------------------------------------------------------------------------


@dataclass
class Likes:
    n: int
    post: np.ndarray
    user: np.ndarray
    created: np.ndarray


def draw_likes(
    spec: SeedSpec, clock: Clock, users: Users, posts: Posts, rng: np.random.Generator
) -> Likes:
    """Popular live posts get most; each (post, user) once, after the post was published."""
    n_try = int(spec.like_count * 1.15) + 10
    post = _pick(posts.pop * posts.live, n_try, rng)
    user = _pick(users.reader_w, n_try, rng)
    pairs = np.unique(post * users.n + user)
    if len(pairs) > spec.like_count:
        pairs = rng.choice(pairs, size=spec.like_count, replace=False)
        pairs.sort()
    post, user = pairs // users.n, pairs % users.n
    ms = _after(posts.ms[post], clock.now_ms, rng)
    return Likes(n=len(pairs), post=post, user=user, created=iso(ms))


@dataclass
class Events:
    n: int
    ms: np.ndarray  # kept as ms: the ISO strings of 10M events are formatted per COPY block
    user: np.ndarray
    post: np.ndarray
    serve: np.ndarray  # serve number of each event
    kind: np.ndarray  # EventKind values
    watched_ms: np.ndarray  # -1 where the kind has none
    serve_reason: list[str]
    serve_token: list[int]


def draw_events(
    spec: SeedSpec, clock: Clock, users: Users, posts: Posts, rng: np.random.Generator
) -> Events:
    """Serves (one impression each) followed by some of watched/completed/see less/see more/
    share; each serve has at most one event of each kind, and its events stay together."""
    n = spec.events
    n_serves = int(n / EVENTS_PER_SERVE) + 16
    serve_post = _pick(posts.pop, n_serves, rng)
    serve_user = _pick(users.reader_w, n_serves, rng)
    serve_ms = _after(posts.ms[serve_post], clock.now_ms, rng)
    u = rng.random((n_serves, 5))
    watched = u[:, 0] < WATCHED_SHARE
    flags = np.column_stack(  # columns in SERVE_EVENT_KINDS order
        [
            np.ones(n_serves, dtype=bool),
            watched,
            watched & (u[:, 1] < COMPLETED_SHARE),
            u[:, 2] < SEE_LESS_SHARE,
            u[:, 3] < SEE_MORE_SHARE,
            u[:, 4] < SHARE_SHARE,
        ]
    )
    serve_of, column = np.nonzero(flags)  # row-major: a serve's events stay together
    while len(serve_of) < n:  # rare: top up with impressions of fresh serves
        extra = n - len(serve_of)
        serve_of = np.concatenate([serve_of, rng.integers(0, n_serves, size=extra)])
        column = np.concatenate([column, np.zeros(extra, dtype=column.dtype)])
    serve_of, column = serve_of[:n], column[:n]
    kind = SERVE_EVENT_KINDS[column]
    # Each later event of a serve comes a few seconds after the one before.
    ms = np.minimum(serve_ms[serve_of] + column * rng.integers(500, 15_000, n), clock.now_ms)
    watched_ms = np.where(np.isin(kind, WATCH_KINDS), rng.integers(500, 20_000, n), -1)
    reason = SERVE_REASONS[_pick(SERVE_REASON_WEIGHTS, n_serves, rng)]
    token = rng.integers(0, 1 << 48, size=n_serves, dtype=np.int64).tolist()
    return Events(
        n=n,
        ms=ms,
        user=serve_user[serve_of],
        post=serve_post[serve_of],
        serve=serve_of,
        kind=kind,
        watched_ms=watched_ms,
        serve_reason=reason.tolist(),
        serve_token=token,
    )


@dataclass
class Counters:
    cells: np.ndarray  # rows post * COUNTER_SHARDS + shard; columns COUNTED order
    nonzero: np.ndarray  # the cells that get a row


# PostCounter columns the seed fills, in the order of `Counters.cells`' columns.
COUNTED = ("likes", "remixes", "views", "completes", "see_less")


def draw_counters(posts: Posts, likes: Likes, events: Events, rng: np.random.Generator) -> Counters:
    """Exact counts per post spread over shards: likes = Like rows, remixes = live remixes,
    views / completes / see_less = impression / completed / see-less events."""
    n = posts.n
    live_child = posts.is_remix & posts.live
    counted = [
        likes.post,
        posts.parent[live_child],
        events.post[events.kind == EventKind.IMPRESSION],
        events.post[events.kind == EventKind.COMPLETED],
        events.post[events.kind == EventKind.SEE_LESS],
    ]
    busy = np.bincount(likes.post, minlength=n) + np.bincount(posts.parent[live_child], minlength=n)
    hot = (busy + np.bincount(events.post, minlength=n)) > HOT_POST

    def sharded(items: np.ndarray) -> np.ndarray:
        shard = np.where(hot[items], rng.integers(0, COUNTER_SHARDS, size=len(items)), 0)
        return np.bincount(items * COUNTER_SHARDS + shard, minlength=n * COUNTER_SHARDS)

    cells = np.column_stack([sharded(items) for items in counted])
    for column, items in enumerate(counted):
        if cells[:, column].sum() != len(items):
            raise AssertionError(f"{COUNTED[column]}: the shards lost counts")
    return Counters(cells=cells, nonzero=np.nonzero(cells.any(axis=1))[0])


def first_event_month(events: Events) -> date:
    return datetime.fromtimestamp(int(events.ms.min()) / 1000, UTC).date()

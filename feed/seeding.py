"""Synthetic feed data at scale for benchmarks: users, follows, posts (with their generations
and videos), remix chains, likes, sharded counters and feed events, written with COPY.

The shape is skewed the way social data is: a few prolific authors (Zipf-like author weights),
a heavy-tailed post popularity (log-normal, times an author factor) that decides which posts
get most of the likes, events and remixes, and follows concentrated on popular authors. Every
derived number is exact: a post's `PostCounter` shards sum to its `Like` rows (likes), its live
remixes (remixes) and its impression, completed and see-less events (views, completes,
see_less; each seeded serve has at most one of each).

Seeded users are named `seed_<n>`; `seed_delete()` removes them and everything they own. All
randomness comes from one `numpy` generator, so a seed reproduces the same data (ids included).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import numpy as np
from django.contrib.auth.hashers import make_password
from django.db import connection, transaction
from tqdm import tqdm

from accounts.models import Follow, User
from accounts.names import name_key
from generation.models import Generation, Video

from .models import FeedEvent, Like, Post, PostCounter
from .partitions import ensure_partitions

SEED_PREFIX = "seed_"
SEED_PASSWORD = "riff-seed-pass"  # noqa: S105 - synthetic benchmark users
CHUNK = 100_000
SHARDS = 8
# Posts with more engaging events than this spread their counts over all shards, the way
# concurrent writers would; quieter posts keep them in shard 0.
HOT_POST = 64

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
class SeedReport:
    rows: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def total_rows(self) -> int:
        return sum(self.rows.values())

    @property
    def total_seconds(self) -> float:
        return sum(self.seconds.values())


def seeded_user_count() -> int:
    return User.objects.filter(username__startswith=SEED_PREFIX).count()


# --- helpers ----------------------------------------------------------------------------------


def _uuid7(ms: np.ndarray, rng: np.random.Generator) -> list[str]:
    """Time-ordered UUIDs (v7 layout) for creation times in ms: keeps primary-key inserts
    append-mostly, as a real app minting v7 ids would."""
    hi = rng.integers(0, 1 << 12, size=len(ms), dtype=np.int64).tolist()
    lo = rng.integers(0, 1 << 62, size=len(ms), dtype=np.int64).tolist()
    out = []
    for t, a, b in zip(ms.tolist(), hi, lo, strict=True):
        out.append(str(uuid.UUID(int=(t << 80) | (0x7 << 76) | (a << 64) | (0b10 << 62) | b)))
    return out


def _ts(ms: np.ndarray) -> np.ndarray:
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


def _check_columns(model, columns: list[str]) -> None:
    """COPY bypasses Django defaults: fail loudly if a NOT NULL column is left out."""
    missing = [
        f.column
        for f in model._meta.concrete_fields
        if f.column not in columns and not f.null and not (f.primary_key and f.column == "id")
    ]
    if missing:
        raise RuntimeError(f"{model._meta.db_table}: COPY misses NOT NULL columns {missing}")


def _copy(
    table: str,
    columns: list[str],
    total: int,
    blocks: Iterator[tuple[str, int]],
    report: SeedReport,
    *,
    quiet: bool,
) -> None:
    """Streams text-format COPY blocks (rows joined by newlines) into `table`, one transaction."""
    connection.ensure_connection()
    pg = connection.connection
    started = time.monotonic()
    sql = f"COPY {table} ({', '.join(columns)}) FROM STDIN"
    with (
        tqdm(total=total, desc=f"{table:<22}", unit="row", unit_scale=True, disable=quiet) as bar,
        pg.transaction(),
        pg.cursor() as cur,
        cur.copy(sql) as copy,
    ):
        for block, n in blocks:
            if n:
                copy.write(block + "\n")
                bar.update(n)
    report.rows[table] = report.rows.get(table, 0) + total
    report.seconds[table] = report.seconds.get(table, 0.0) + time.monotonic() - started


def _chunks(n: int, build: Callable[[int, int], str]) -> Iterator[tuple[str, int]]:
    for start in range(0, n, CHUNK):
        stop = min(n, start + CHUNK)
        yield build(start, stop), stop - start


# --- the seed ---------------------------------------------------------------------------------


def seed(spec: SeedSpec, *, quiet: bool = False, now: datetime | None = None) -> SeedReport:
    """Writes the whole data set. Precondition: no seeded users exist (see `seed_delete`)."""
    rng = np.random.default_rng(spec.seed)
    report = SeedReport()
    now = now or datetime.now(UTC)
    now_ms = int(now.timestamp() * 1000)
    day_ms = 86_400_000
    n_users, n_posts = spec.users, spec.posts
    if n_users < 2 or n_posts < 1:
        raise ValueError("need at least 2 users and 1 post")

    # Users: joined 60 to 400 days before the first post.
    posts_from_ms = now_ms - spec.days * day_ms
    user_ms = np.sort(
        rng.integers(posts_from_ms - 400 * day_ms, posts_from_ms - 60 * day_ms, size=n_users)
    )
    user_ids = np.array(_uuid7(user_ms, rng), dtype=object)
    user_ts = _ts(user_ms)
    birth_days = rng.integers(0, (date(2005, 1, 1) - date(1965, 1, 1)).days, size=n_users)
    births = [(date(1965, 1, 1) + timedelta(days=int(d))).isoformat() for d in birth_days]
    password = make_password(SEED_PASSWORD)
    # Who posts (Zipf-like: a few prolific authors) and who reads (log-normal activity).
    author_w = _zipf_weights(n_users, 0.7, rng)
    reader_w = rng.lognormal(0.0, 1.0, size=n_users)
    reader_w /= reader_w.sum()

    user_cols = [
        "id",
        "password",
        "is_superuser",
        "username",
        "username_key",
        "email",
        "display_name",
        "bio",
        "birth_date",
        "avatar_large",
        "avatar_small",
        "is_active",
        "is_staff",
        "created_at",
    ]
    _check_columns(User, user_cols)

    def user_block(a: int, b: int) -> str:
        rows = []
        for i in range(a, b):
            name = f"{SEED_PREFIX}{i}"
            rows.append(
                f"{user_ids[i]}\t{password}\tf\t{name}\t{name_key(name)}\t\tSeed {i}\t\t"
                f"{births[i]}\t\t\tt\tf\t{user_ts[i]}"
            )
        return "\n".join(rows)

    _copy("accounts_user", user_cols, n_users, _chunks(n_users, user_block), report, quiet=quiet)

    # Follows: each user follows ~follows_per_user people, mostly popular authors.
    per_user = np.minimum(
        rng.poisson(spec.follows_per_user, size=n_users), max(0, n_users - 1)
    ).astype(np.int64)
    follower = np.repeat(np.arange(n_users, dtype=np.int64), per_user)
    popular = rng.random(len(follower)) < 0.7
    followee = np.where(
        popular,
        _pick(author_w, len(follower), rng),
        rng.integers(0, n_users, size=len(follower)),
    )
    pairs = np.unique(follower * n_users + followee)
    follower, followee = pairs // n_users, pairs % n_users
    keep = follower != followee
    follower, followee = follower[keep], followee[keep]
    n_follows = len(follower)
    follow_ms = np.maximum(user_ms[follower], user_ms[followee]) + rng.integers(
        0, 30 * day_ms, size=n_follows
    )
    follow_ms = np.minimum(follow_ms, now_ms)
    follow_ts = _ts(follow_ms)
    _check_columns(Follow, ["follower_id", "followee_id", "created_at"])

    def follow_block(a: int, b: int) -> str:
        return "\n".join(
            f"{user_ids[f]}\t{user_ids[g]}\t{t}"
            for f, g, t in zip(
                follower[a:b].tolist(), followee[a:b].tolist(), follow_ts[a:b], strict=True
            )
        )

    _copy(
        "accounts_follow",
        ["follower_id", "followee_id", "created_at"],
        n_follows,
        _chunks(n_follows, follow_block),
        report,
        quiet=quiet,
    )

    # Posts, in publish order.
    post_ms = np.sort(rng.integers(posts_from_ms, now_ms - 60_000, size=n_posts))
    author = _pick(author_w, n_posts, rng)
    author_factor = rng.lognormal(0.0, 0.7, size=n_users)
    pop = rng.lognormal(0.0, 1.8, size=n_posts) * author_factor[author]
    live = rng.random(n_posts) >= spec.removed_share
    allow_remix = rng.random(n_posts) >= 0.05
    # ~remix_share of posts remix an earlier post, chosen by popularity among those that allow it.
    is_remix = rng.random(n_posts) < spec.remix_share
    is_remix[0] = False
    parent = np.full(n_posts, -1, dtype=np.int64)
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
    root = np.arange(n_posts, dtype=np.int64)
    depth = np.zeros(n_posts, dtype=np.int64)
    for j, p in zip(idx.tolist(), parent[idx].tolist(), strict=True):  # parents come first
        root[j], depth[j] = root[p], depth[p] + 1
    # A remix author remixes someone else's post more often than not (any user may).
    author[idx] = np.where(rng.random(len(idx)) < 0.9, _pick(author_w, len(idx), rng), author[idx])
    post_ids = np.array(_uuid7(post_ms, rng), dtype=object)
    gen_ids = np.array(_uuid7(post_ms - 30_000, rng), dtype=object)
    video_ids = np.array(_uuid7(post_ms - 5_000, rng), dtype=object)
    post_ts, gen_ts, video_ts = _ts(post_ms), _ts(post_ms - 30_000), _ts(post_ms - 5_000)
    started_ts = _ts(post_ms - 28_000)
    words = [rng.integers(0, len(v), size=n_posts) for v in (_ADJ, _NOUN, _VERB, _PLACE)]
    gen_seed = rng.integers(0, 2**62, size=n_posts).tolist()

    def prompt(j: int) -> str:
        return (
            f"a {_ADJ[words[0][j]]} {_NOUN[words[1][j]]} {_VERB[words[2][j]]} {_PLACE[words[3][j]]}"
        )

    gen_cols = [
        "id",
        "owner_id",
        "prompt",
        "remix_of_id",
        "serve_id",
        "seconds",
        "aspect",
        "seed",
        "status",
        "progress",
        "error_code",
        "error_message",
        "attempts",
        "worker",
        "dispatched_at",
        "created_at",
        "started_at",
        "completed_at",
    ]
    _check_columns(Generation, gen_cols)

    def gen_block(a: int, b: int) -> str:
        rows = []
        for j in range(a, b):
            p = parent[j]
            rows.append(
                f"{gen_ids[j]}\t{user_ids[author[j]]}\t{prompt(j)}\t"
                f"{post_ids[p] if p >= 0 else chr(92) + 'N'}\t\t2\t9:16\t{gen_seed[j]}\t"
                f"succeeded\t1\t\t\t1\tseed-worker\t{gen_ts[j]}\t{gen_ts[j]}\t{started_ts[j]}\t"
                f"{video_ts[j]}"
            )
        return "\n".join(rows)

    _copy(
        "generation_generation", gen_cols, n_posts, _chunks(n_posts, gen_block), report, quiet=quiet
    )

    video_cols = [
        "id",
        "owner_id",
        "generation_id",
        "state",
        "seconds",
        "width",
        "height",
        "frame_count",
        "content",
        "poster",
        "preview",
        "sha256",
        "removed_reason",
        "created_at",
    ]
    _check_columns(Video, video_cols)

    def video_block(a: int, b: int) -> str:
        rows = []
        for j in range(a, b):
            vid = video_ids[j]
            state, why = ("posted", "") if live[j] else ("removed", "post deleted by its author")
            digest = vid.replace("-", "") + gen_ids[j].replace("-", "")
            rows.append(
                f"{vid}\t{user_ids[author[j]]}\t{gen_ids[j]}\t{state}\t2.0\t288\t512\t48\t"
                f"videos/seed/{vid}.mp4\tvideos/seed/{vid}.jpg\tvideos/seed/{vid}.webp\t"
                f"{digest}\t{why}\t{video_ts[j]}"
            )
        return "\n".join(rows)

    _copy(
        "generation_video", video_cols, n_posts, _chunks(n_posts, video_block), report, quiet=quiet
    )

    post_cols = [
        "id",
        "author_id",
        "video_id",
        "caption",
        "allow_remix",
        "state",
        "removed_reason",
        "remix_of_id",
        "root_id",
        "depth",
        "cameo_ids",
        "serve_id",
        "created_at",
    ]
    _check_columns(Post, post_cols)

    def post_block(a: int, b: int) -> str:
        rows = []
        for j in range(a, b):
            p = parent[j]
            state, why = ("live", "") if live[j] else ("removed", "deleted by its author")
            rows.append(
                f"{post_ids[j]}\t{user_ids[author[j]]}\t{video_ids[j]}\t{prompt(j)} #riff\t"
                f"{'t' if allow_remix[j] else 'f'}\t{state}\t{why}\t"
                f"{post_ids[p] if p >= 0 else chr(92) + 'N'}\t{post_ids[root[j]]}\t{depth[j]}\t"
                f"[]\t\t{post_ts[j]}"
            )
        return "\n".join(rows)

    _copy("feed_post", post_cols, n_posts, _chunks(n_posts, post_block), report, quiet=quiet)

    # Likes: popular posts get most; each (post, user) once, after the post was published.
    live_pop = pop * live
    n_try = int(spec.like_count * 1.15) + 10
    like_post = _pick(live_pop, n_try, rng)
    like_user = _pick(reader_w, n_try, rng)
    pairs = np.unique(like_post * n_users + like_user)
    if len(pairs) > spec.like_count:
        pairs = rng.choice(pairs, size=spec.like_count, replace=False)
        pairs.sort()
    like_post, like_user = pairs // n_users, pairs % n_users
    n_likes = len(pairs)
    like_ms = post_ms[like_post] + (
        (now_ms - post_ms[like_post]) * rng.random(n_likes) ** 3
    ).astype(np.int64)
    like_ts = _ts(like_ms)
    _check_columns(Like, ["post_id", "user_id", "created_at"])

    def like_block(a: int, b: int) -> str:
        return "\n".join(
            f"{post_ids[p]}\t{user_ids[u]}\t{t}"
            for p, u, t in zip(
                like_post[a:b].tolist(), like_user[a:b].tolist(), like_ts[a:b], strict=True
            )
        )

    _copy(
        "feed_like",
        ["post_id", "user_id", "created_at"],
        n_likes,
        _chunks(n_likes, like_block),
        report,
        quiet=quiet,
    )

    # Feed events: one serve (an impression) followed by some of watched/completed/share/...
    n_events = spec.events
    n_serves = int(n_events / 1.7) + 16
    serve_post = _pick(pop, n_serves, rng)
    serve_user = _pick(reader_w, n_serves, rng)
    serve_ms = post_ms[serve_post] + (
        (now_ms - post_ms[serve_post]) * rng.random(n_serves) ** 3
    ).astype(np.int64)
    u = rng.random((n_serves, 5))
    flags = np.column_stack(
        [
            np.ones(n_serves, dtype=bool),  # impression
            u[:, 0] < 0.45,  # watched
            (u[:, 0] < 0.45) & (u[:, 1] < 0.45),  # completed
            u[:, 2] < 0.02,  # see_less
            u[:, 3] < 0.01,  # see_more
            u[:, 4] < 0.03,  # share
        ]
    )
    serve_of, kind_col = np.nonzero(flags)  # row-major: a serve's events stay together
    while len(serve_of) < n_events:  # rare: top up with impressions of fresh serves
        extra = n_events - len(serve_of)
        serve_of = np.concatenate([serve_of, rng.integers(0, n_serves, size=extra)])
        kind_col = np.concatenate([kind_col, np.zeros(extra, dtype=kind_col.dtype)])
    serve_of, kind_col = serve_of[:n_events], kind_col[:n_events]
    ev_kind = (kind_col + 1).astype(np.int64)
    ev_post = serve_post[serve_of]
    ev_user = serve_user[serve_of]
    ev_ms = np.minimum(serve_ms[serve_of] + kind_col * rng.integers(500, 15_000, n_events), now_ms)
    watched = np.where(np.isin(ev_kind, (2, 3)), rng.integers(500, 20_000, n_events), -1)
    reasons = np.array(["for_you", "following", "latest"], dtype=object)
    serve_reason = reasons[_pick(np.array([0.6, 0.25, 0.15]), n_serves, rng)]
    serve_token = rng.integers(0, 1 << 48, size=n_serves, dtype=np.int64).tolist()
    serve_reason = serve_reason.tolist()
    # Signed ids are minted per viewer by feed.serving; seeded ones carry a placeholder signature.
    sig = "5eed" * 4

    # Monthly partitions for every month the events span (older months would land in DEFAULT).
    first_month = datetime.fromtimestamp(int(ev_ms.min()) / 1000, UTC).date()
    months = (now.year - first_month.year) * 12 + now.month - first_month.month
    ensure_partitions(connection, today=first_month, ahead=months + 2)
    _check_columns(
        FeedEvent, ["created_at", "user_id", "post_id", "serve_id", "kind", "watched_ms"]
    )

    def event_block(a: int, b: int) -> str:
        ts = _ts(ev_ms[a:b])
        rows = []
        for t, uu, p, s, k, w in zip(
            ts,
            ev_user[a:b].tolist(),
            ev_post[a:b].tolist(),
            serve_of[a:b].tolist(),
            ev_kind[a:b].tolist(),
            watched[a:b].tolist(),
            strict=True,
        ):
            rows.append(
                f"{t}\t{user_ids[uu]}\t{post_ids[p]}\t"
                f"{serve_reason[s]}.{serve_token[s]:012x}.{sig}\t{k}\t{w if w >= 0 else chr(92) + 'N'}"
            )
        return "\n".join(rows)

    _copy(
        "feed_feedevent",
        ["created_at", "user_id", "post_id", "serve_id", "kind", "watched_ms"],
        n_events,
        _chunks(n_events, event_block),
        report,
        quiet=quiet,
    )

    # Counter shards, exact: likes = Like rows, remixes = live remixes, views = impressions.
    likes = np.bincount(like_post, minlength=n_posts)
    live_child = is_remix & live
    remixes = np.bincount(parent[live_child], minlength=n_posts)
    views = np.bincount(ev_post[ev_kind == 1], minlength=n_posts)
    completes = np.bincount(ev_post[ev_kind == 3], minlength=n_posts)
    see_less = np.bincount(ev_post[ev_kind == 4], minlength=n_posts)
    hot = (likes + remixes + np.bincount(ev_post, minlength=n_posts)) > HOT_POST

    def sharded(items: np.ndarray) -> np.ndarray:
        shard = np.where(hot[items], rng.integers(0, SHARDS, size=len(items)), 0)
        return np.bincount(items * SHARDS + shard, minlength=n_posts * SHARDS)

    cells = np.column_stack(
        [
            sharded(like_post),
            sharded(parent[live_child]),
            sharded(ev_post[ev_kind == 1]),
            sharded(ev_post[ev_kind == 3]),
            sharded(ev_post[ev_kind == 4]),
        ]
    )
    assert cells[:, 0].sum() == likes.sum() and cells[:, 2].sum() == views.sum()
    assert cells[:, 1].sum() == remixes.sum()
    assert cells[:, 3].sum() == completes.sum() and cells[:, 4].sum() == see_less.sum()
    nonzero = np.nonzero(cells.any(axis=1))[0]
    counter_columns = [
        "post_id",
        "shard",
        "likes",
        "comments",
        "remixes",
        "views",
        "completes",
        "see_less",
    ]
    _check_columns(PostCounter, counter_columns)

    def counter_block(a: int, b: int) -> str:
        rows = []
        for cell in nonzero[a:b].tolist():
            lk, rm, vw, cp, sl = cells[cell].tolist()
            rows.append(
                f"{post_ids[cell // SHARDS]}\t{cell % SHARDS}\t{lk}\t0\t{rm}\t{vw}\t{cp}\t{sl}"
            )
        return "\n".join(rows)

    _copy(
        "feed_postcounter",
        counter_columns,
        len(nonzero),
        _chunks(len(nonzero), counter_block),
        report,
        quiet=quiet,
    )

    started = time.monotonic()
    with connection.cursor() as cur:
        for table in (
            "accounts_user",
            "accounts_follow",
            "generation_generation",
            "generation_video",
            "feed_post",
            "feed_like",
            "feed_feedevent",
            "feed_postcounter",
        ):
            cur.execute(f"ANALYZE {table}")
    report.seconds["analyze"] = time.monotonic() - started
    return report


def seed_delete(*, quiet: bool = False) -> int:
    """Deletes every seeded user and what they own (and anything else that points at them);
    returns the number of users deleted. The big tables go first in set-based SQL, the rest
    through the ORM's cascade so no relation is forgotten."""
    seeded = "SELECT id FROM accounts_user WHERE username LIKE 'seed\\_%%'"
    posts = f"SELECT id FROM feed_post WHERE author_id IN ({seeded})"  # noqa: S608
    statements = [
        f"DELETE FROM feed_feedevent WHERE user_id IN ({seeded}) OR post_id IN ({posts})",  # noqa: S608
        f"DELETE FROM feed_postcounter WHERE post_id IN ({posts})",  # noqa: S608
        f"DELETE FROM feed_comment WHERE post_id IN ({posts})",  # noqa: S608
        f"DELETE FROM feed_like WHERE user_id IN ({seeded}) OR post_id IN ({posts})",  # noqa: S608
        f"UPDATE feed_post SET remix_of_id = NULL WHERE remix_of_id IN ({posts})",  # noqa: S608
        f"DELETE FROM feed_post WHERE author_id IN ({seeded})",  # noqa: S608
        f"DELETE FROM generation_video WHERE owner_id IN ({seeded})",  # noqa: S608
        f"DELETE FROM generation_generation WHERE owner_id IN ({seeded})",  # noqa: S608
        f"DELETE FROM accounts_follow WHERE follower_id IN ({seeded}) "  # noqa: S608
        f"OR followee_id IN ({seeded})",
    ]
    count = seeded_user_count()
    # One transaction: a row elsewhere that still points at a seeded post fails the commit
    # (deferred foreign keys) and nothing is half-deleted.
    with transaction.atomic():
        with connection.cursor() as cur:
            for sql in tqdm(statements, desc="reset", disable=quiet):
                cur.execute(sql)
        User.objects.filter(username__startswith=SEED_PREFIX).delete()
    return count

"""Synthetic feed data at scale for benchmarks: users, follows, posts (with their generations
and videos), remix chains, likes, sharded counters and feed events, written with COPY.

`seed()` draws the whole shape first (`shapes`: skewed like social data, reproducible from one
seed) and hands each table to its own writer (`writers`). Every derived number is exact: a
post's `PostCounter` shards sum to its `Like` rows (likes), its live remixes (remixes) and its
impression, completed and see-less events (views, completes, see_less; each seeded serve has
at most one of each).

Seeded users are named `seed_<n>`; `seed_delete()` removes them and everything they own.
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np

from accounts.models import Follow, User
from feed.models import FeedEvent, Like, Post, PostCounter
from generation.models import Generation, Video

from . import writers
from .copy import SeedReport, analyze
from .reset import seed_delete, seeded_user_count
from .shapes import (
    SEED_PASSWORD,
    SEED_PREFIX,
    Clock,
    SeedSpec,
    draw_counters,
    draw_events,
    draw_follows,
    draw_likes,
    draw_posts,
    draw_users,
)

__all__ = [
    "SEED_PASSWORD",
    "SEED_PREFIX",
    "SeedReport",
    "SeedSpec",
    "seed",
    "seed_delete",
    "seeded_user_count",
]


def seed(spec: SeedSpec, *, quiet: bool = False, now: datetime | None = None) -> SeedReport:
    """Writes the whole data set. Precondition: no seeded users exist (see `seed_delete`).

    Each table is drawn and written in turn (draws in this fixed order keep a seed's data
    identical from run to run); a table is one COPY transaction.
    """
    if spec.users < 2 or spec.posts < 1:
        raise ValueError("need at least 2 users and 1 post")
    rng = np.random.default_rng(spec.seed)
    clock = Clock.at(now or datetime.now(UTC), days=spec.days)
    report = SeedReport()

    users = draw_users(spec, clock, rng)
    writers.write_users(users, report, quiet=quiet)
    follows = draw_follows(spec, clock, users, rng)
    writers.write_follows(users, follows, report, quiet=quiet)
    posts = draw_posts(spec, clock, users, rng)
    writers.write_generations(users, posts, report, quiet=quiet)
    writers.write_videos(users, posts, report, quiet=quiet)
    writers.write_posts(users, posts, report, quiet=quiet)
    likes = draw_likes(spec, clock, users, posts, rng)
    writers.write_likes(users, posts, likes, report, quiet=quiet)
    events = draw_events(spec, clock, users, posts, rng)
    writers.write_feed_events(clock, users, posts, events, report, quiet=quiet)
    counters = draw_counters(posts, likes, events, rng)
    writers.write_post_counters(posts, counters, report, quiet=quiet)

    analyze([User, Follow, Generation, Video, Post, Like, FeedEvent, PostCounter], report)
    return report

"""One writer per table: each formats the drawn shape (`seeding.shapes`) as COPY rows.

A writer names its columns next to the values it writes, in the same order, and takes states
and kinds from the models' enums, so a renamed state or a new NOT NULL column breaks here
loudly (`copy.check_columns`) rather than seeding rows the app can't read.
"""

from __future__ import annotations

from django.conf import settings
from django.db import connection

from accounts.models import Follow, User
from accounts.names import name_key
from feed.models import COUNTER_SHARDS, FeedEvent, Like, Post, PostCounter, PostState
from feed.partitions import ensure_partitions
from generation.models import Aspect, Generation, GenerationStatus, Video, VideoState

from .copy import NULL, SeedReport, boolean, copy_table
from .shapes import (
    COUNTED,
    SEED_PREFIX,
    Clock,
    Counters,
    Events,
    Follows,
    Likes,
    Posts,
    Users,
    first_event_month,
    iso,
)

# Every seeded clip is the engine's default: 2 s of 9:16 at 24 fps.
SEED_SECONDS = 2
SEED_WIDTH, SEED_HEIGHT, SEED_FRAMES = 288, 512, 48
SEED_WORKER = "seed-worker"
# The reasons post_delete records (feed.services): seeded removals look like an author's delete.
POST_REMOVED_REASON = "deleted by its author"
VIDEO_REMOVED_REASON = "post deleted by its author"
# Signed serve ids are minted per viewer by feed.serving; seeded ones carry this placeholder.
SERVE_SIGNATURE = "5eed" * 4


def write_users(users: Users, report: SeedReport, *, quiet: bool) -> None:
    columns = [
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
    no, yes = boolean(False), boolean(True)

    def block(a: int, b: int) -> str:
        rows = []
        for i in range(a, b):
            name = f"{SEED_PREFIX}{i}"
            rows.append(
                f"{users.ids[i]}\t{users.password}\t{no}\t{name}\t{name_key(name)}\t\t"
                f"Seed {i}\t\t{users.births[i]}\t\t\t{yes}\t{no}\t{users.created[i]}"
            )
        return "\n".join(rows)

    copy_table(User, columns, users.n, block, report, quiet=quiet)


def write_follows(users: Users, follows: Follows, report: SeedReport, *, quiet: bool) -> None:
    columns = ["follower_id", "followee_id", "created_at"]

    def block(a: int, b: int) -> str:
        return "\n".join(
            f"{users.ids[f]}\t{users.ids[g]}\t{t}"
            for f, g, t in zip(
                follows.follower[a:b].tolist(),
                follows.followee[a:b].tolist(),
                follows.created[a:b],
                strict=True,
            )
        )

    copy_table(Follow, columns, follows.n, block, report, quiet=quiet)


def write_generations(users: Users, posts: Posts, report: SeedReport, *, quiet: bool) -> None:
    """Every post's generation: succeeded on its first attempt, remixing the post's parent."""
    columns = [
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
        "model",
        "size",
        "source_mode",
        "reference_image",
    ]
    done, aspect = GenerationStatus.SUCCEEDED.value, Aspect.PORTRAIT.value
    # Made in the app with the default engine: no delivered size, source or reference image.
    extras = f"{settings.RIFF_ENGINE}\t\t\t"

    def block(a: int, b: int) -> str:
        rows = []
        for j in range(a, b):
            p = posts.parent[j]
            remix_of = posts.ids[p] if p >= 0 else NULL
            admitted = posts.generated[j]
            rows.append(
                f"{posts.generation_ids[j]}\t{users.ids[posts.author[j]]}\t{posts.prompt(j)}\t"
                f"{remix_of}\t\t{SEED_SECONDS}\t{aspect}\t{posts.generation_seed[j]}\t"
                f"{done}\t1\t\t\t1\t{SEED_WORKER}\t{admitted}\t{admitted}\t{posts.started[j]}\t"
                f"{posts.rendered[j]}\t{extras}"
            )
        return "\n".join(rows)

    copy_table(Generation, columns, posts.n, block, report, quiet=quiet)


def write_videos(users: Users, posts: Posts, report: SeedReport, *, quiet: bool) -> None:
    """Every post's video, removed with its post. The files don't exist: the feed only reads
    the rows (a content download of a seeded video is a 404)."""
    columns = [
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
        "state_before_takedown",
        "takedown_reason",
        "created_at",
        "spritesheet",
        "engine_frames",
    ]
    posted = (VideoState.POSTED.value, "")
    removed = (VideoState.REMOVED.value, VIDEO_REMOVED_REASON)
    shape = f"{float(SEED_SECONDS)}\t{SEED_WIDTH}\t{SEED_HEIGHT}\t{SEED_FRAMES}"

    def block(a: int, b: int) -> str:
        rows = []
        for j in range(a, b):
            vid, gen = posts.video_ids[j], posts.generation_ids[j]
            state, why = posted if posts.live[j] else removed
            # Unique and 64 hex digits, like a real SHA-256, without hashing anything.
            digest = vid.replace("-", "") + gen.replace("-", "")
            rows.append(
                f"{vid}\t{users.ids[posts.author[j]]}\t{gen}\t{state}\t{shape}\t"
                f"videos/seed/{vid}.mp4\tvideos/seed/{vid}.jpg\tvideos/seed/{vid}.webp\t"
                f"{digest}\t{why}\t\t\t{posts.rendered[j]}\t\t"
            )
        return "\n".join(rows)

    copy_table(Video, columns, posts.n, block, report, quiet=quiet)


def write_posts(users: Users, posts: Posts, report: SeedReport, *, quiet: bool) -> None:
    columns = [
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
        "takedown_reason",
        "created_at",
    ]
    live = (PostState.LIVE.value, "")
    removed = (PostState.REMOVED.value, POST_REMOVED_REASON)

    def block(a: int, b: int) -> str:
        rows = []
        for j in range(a, b):
            p = posts.parent[j]
            state, why = live if posts.live[j] else removed
            remix_of = posts.ids[p] if p >= 0 else NULL
            rows.append(
                f"{posts.ids[j]}\t{users.ids[posts.author[j]]}\t{posts.video_ids[j]}\t"
                f"{posts.prompt(j)} #riff\t{boolean(posts.allow_remix[j])}\t{state}\t{why}\t"
                f"{remix_of}\t{posts.ids[posts.root[j]]}\t{posts.depth[j]}\t[]\t\t\t"
                f"{posts.created[j]}"
            )
        return "\n".join(rows)

    copy_table(Post, columns, posts.n, block, report, quiet=quiet)


def write_likes(
    users: Users, posts: Posts, likes: Likes, report: SeedReport, *, quiet: bool
) -> None:
    columns = ["post_id", "user_id", "created_at"]

    def block(a: int, b: int) -> str:
        return "\n".join(
            f"{posts.ids[p]}\t{users.ids[u]}\t{t}"
            for p, u, t in zip(
                likes.post[a:b].tolist(), likes.user[a:b].tolist(), likes.created[a:b], strict=True
            )
        )

    copy_table(Like, columns, likes.n, block, report, quiet=quiet)


def write_feed_events(
    clock: Clock, users: Users, posts: Posts, events: Events, report: SeedReport, *, quiet: bool
) -> None:
    """The partitioned event table: first the monthly partitions the events span (older months
    would land in DEFAULT), then the rows."""
    first = first_event_month(events)
    months = (clock.now.year - first.year) * 12 + clock.now.month - first.month
    ensure_partitions(connection, today=first, ahead=months + 2)
    columns = ["created_at", "user_id", "post_id", "serve_id", "kind", "watched_ms"]

    def block(a: int, b: int) -> str:
        rows = []
        for t, u, p, s, k, w in zip(
            iso(events.ms[a:b]),
            events.user[a:b].tolist(),
            events.post[a:b].tolist(),
            events.serve[a:b].tolist(),
            events.kind[a:b].tolist(),
            events.watched_ms[a:b].tolist(),
            strict=True,
        ):
            serve_id = f"{events.serve_reason[s]}.{events.serve_token[s]:012x}.{SERVE_SIGNATURE}"
            watched = w if w >= 0 else NULL
            rows.append(f"{t}\t{users.ids[u]}\t{posts.ids[p]}\t{serve_id}\t{k}\t{watched}")
        return "\n".join(rows)

    copy_table(FeedEvent, columns, events.n, block, report, quiet=quiet)


def write_post_counters(
    posts: Posts, counters: Counters, report: SeedReport, *, quiet: bool
) -> None:
    """A row for each shard that counts something; comments are not seeded."""
    columns = ["post_id", "shard", "comments", *COUNTED]

    def block(a: int, b: int) -> str:
        rows = []
        for cell in counters.nonzero[a:b].tolist():
            counts = "\t".join(map(str, counters.cells[cell].tolist()))
            post, shard = divmod(cell, COUNTER_SHARDS)
            rows.append(f"{posts.ids[post]}\t{shard}\t0\t{counts}")
        return "\n".join(rows)

    copy_table(PostCounter, columns, len(counters.nonzero), block, report, quiet=quiet)

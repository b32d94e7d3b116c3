"""The benchmark seed (config.devtools.seeding); bench_feed is in test_bench_feed.py."""

from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command
from django.db.models import Count, F, Q, Sum

from accounts.models import Follow, User
from config.devtools.seeding import SEED_PREFIX, SeedSpec, seed, seed_delete
from feed.models import EventKind, FeedEvent, Like, Post, PostCounter
from generation.models import Generation, Video

# The bench starts a uvicorn subprocess, which only sees committed rows.
pytestmark = pytest.mark.django_db(transaction=True)

SPEC = SeedSpec(users=50, posts=300, events=2_000, follows_per_user=8, seed=3)


@pytest.fixture
def seeded():
    report = seed(SPEC, quiet=True)
    yield report
    # feed_feedevent is unmanaged, so the test flush does not empty it.
    seed_delete(quiet=True)


def _seeded_ids():
    return list(User.objects.filter(username__startswith=SEED_PREFIX).values_list("id", flat=True))


def test_seed_writes_exact_counts(seeded):
    users = _seeded_ids()
    assert len(users) == 50
    posts = Post.objects.filter(author_id__in=users)
    assert posts.count() == 300
    # Every post has its own video and generation, owned by its author.
    assert (
        posts.filter(video__owner=F("author"), video__generation__owner=F("author")).count() == 300
    )
    assert Video.objects.filter(owner_id__in=users).count() == 300
    assert Generation.objects.filter(owner_id__in=users, status="succeeded").count() == 300
    assert FeedEvent.objects.filter(user_id__in=users).count() == 2_000
    likes = Like.objects.filter(user_id__in=users).count()
    assert likes == seeded.rows["feed_like"] and 0 < likes <= SPEC.like_count
    follows = Follow.objects.filter(follower_id__in=users)
    assert follows.count() == seeded.rows["accounts_follow"] > 0
    assert not follows.filter(follower=F("followee")).exists()
    # Skew: the busiest author has well over the mean share of posts.
    top = posts.values("author").annotate(n=Count("id")).order_by("-n").first()["n"]
    assert top > 3 * 300 / 50


def test_seed_counters_match_rows(seeded):
    posts = Post.objects.filter(author__username__startswith=SEED_PREFIX)
    sums = {
        row["post_id"]: row
        for row in PostCounter.objects.filter(post__in=posts)
        .values("post_id")
        .annotate(
            likes=Sum("likes"),
            remixes=Sum("remixes"),
            views=Sum("views"),
            completes=Sum("completes"),
            see_less=Sum("see_less"),
        )
    }
    like_rows = dict(
        Like.objects.filter(post__in=posts).values_list("post_id").annotate(n=Count("id"))
    )
    live_children = dict(
        posts.filter(state="live", remix_of__isnull=False)
        .values_list("remix_of_id")
        .annotate(n=Count("id"))
    )

    def events_of(kind):
        return dict(
            FeedEvent.objects.filter(kind=kind).values_list("post_id").annotate(n=Count("id"))
        )

    impressions = events_of(EventKind.IMPRESSION)
    completed, see_less = events_of(EventKind.COMPLETED), events_of(EventKind.SEE_LESS)
    assert sum(completed.values()) > 0 and sum(see_less.values()) > 0
    assert sum(like_rows.values()) > 0 and sum(live_children.values()) > 0
    for pk in posts.values_list("id", flat=True):
        got = sums.get(pk, {"likes": 0, "remixes": 0, "views": 0, "completes": 0, "see_less": 0})
        assert got["likes"] == like_rows.get(pk, 0)
        assert got["remixes"] == live_children.get(pk, 0)
        assert got["views"] == impressions.get(pk, 0)
        assert got["completes"] == completed.get(pk, 0)
        assert got["see_less"] == see_less.get(pk, 0)
    assert PostCounter.objects.filter(post__in=posts, shard__gte=8).count() == 0


def test_seed_lineage_is_consistent(seeded):
    posts = Post.objects.filter(author__username__startswith=SEED_PREFIX)
    roots = posts.filter(remix_of__isnull=True)
    assert roots.filter(Q(depth__gt=0) | ~Q(root_id=F("id"))).count() == 0
    remixes = posts.filter(remix_of__isnull=False)
    assert 0.03 * 300 < remixes.count() < 0.2 * 300
    bad = remixes.exclude(root_id=F("remix_of__root_id"), depth=F("remix_of__depth") + 1)
    assert bad.count() == 0
    assert remixes.filter(remix_of__created_at__gte=F("created_at")).count() == 0
    assert remixes.filter(remix_of__allow_remix=False).count() == 0
    # The generation records the same parent.
    assert remixes.exclude(video__generation__remix_of_id=F("remix_of_id")).count() == 0


def test_seed_refuses_then_resets(seeded):
    with pytest.raises(CommandError):
        call_command("seed_feed", users=10, posts=20, events=50, verbosity=0)
    call_command("seed_feed", users=10, posts=20, events=50, reset=True, verbosity=0)
    users = _seeded_ids()
    assert len(users) == 10
    assert Post.objects.filter(author_id__in=users).count() == 20
    assert FeedEvent.objects.filter(user_id__in=users).count() == 50
    assert Post.objects.count() == 20


def test_seed_is_reproducible_and_speaks_the_models_enums():
    from datetime import UTC, datetime

    from feed.models import PostState
    from generation.models import Aspect, GenerationStatus, VideoState

    spec = SeedSpec(users=12, posts=40, events=200, follows_per_user=3, seed=9)
    now = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)

    def snapshot():
        seed(spec, quiet=True, now=now)
        posts = Post.objects.filter(author__username__startswith=SEED_PREFIX)
        shot = {
            "posts": sorted(posts.values_list("id", "author_id", "remix_of_id", "state")),
            "events": sorted(
                FeedEvent.objects.values_list("post_id", "user_id", "serve_id", "kind")
            ),
        }
        assert set(posts.values_list("state", flat=True)) <= set(PostState.values)
        videos = Video.objects.filter(owner__username__startswith=SEED_PREFIX)
        assert set(videos.values_list("state", flat=True)) <= set(VideoState.values)
        generations = Generation.objects.filter(owner__username__startswith=SEED_PREFIX)
        assert set(generations.values_list("status", "aspect")) == {
            (GenerationStatus.SUCCEEDED, Aspect.PORTRAIT)
        }
        assert {kind for *_, kind in shot["events"]} <= set(EventKind.values)
        seed_delete(quiet=True)
        return shot

    first = snapshot()
    assert first["posts"] and first["events"]
    assert snapshot() == first

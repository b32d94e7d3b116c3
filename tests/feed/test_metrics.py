"""Creation metrics: exact on a known fixture, staff only, and the admin chart."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from feed.models import EventKind, FeedEvent
from feed.serving import serve_id_make
from generation.models import Generation, GenerationStatus
from tests.conftest import client_for
from tests.feed.test_for_you import bulk_posts
from tests.helpers import assert_error

pytestmark = pytest.mark.django_db


def gen(user, at, serve_id=""):
    g = Generation.objects.create(
        owner=user, prompt="x", seed=1, status=GenerationStatus.SUCCEEDED, serve_id=serve_id
    )
    Generation.objects.filter(pk=g.pk).update(created_at=at)
    return g


def event(user, at, *, reason="following", kind=EventKind.IMPRESSION, serve_id=None, post=None):
    sid = serve_id or serve_id_make(user_id=user.pk, reason=reason)
    FeedEvent.objects.bulk_create(
        [FeedEvent(created_at=at, user_id=user.pk, post_id=post.pk, serve_id=sid, kind=kind)]
    )
    return sid


@pytest.fixture
def fixture(make_user):
    """Known rows, times relative to now; the window is the last 30 days."""
    now = timezone.now()
    old = now - timedelta(days=60)
    # Cohort: four users joined 2-10 days ago; two created on day one (one at +23 h, one at
    # +1 h); one created only on day three; one never. A fifth joined 3 hours ago (first day
    # not over) and is left out even though they created.
    cohort = [make_user(username=f"new{i}") for i in range(5)]
    joined = [now - timedelta(days=d) for d in (10, 5, 4, 2)] + [now - timedelta(hours=3)]
    for user, at in zip(cohort, joined, strict=True):
        type(user).objects.filter(pk=user.pk).update(created_at=at)
    poster = make_user(username="poster")
    type(poster).objects.filter(pk=poster.pk).update(created_at=old)
    (post,) = bulk_posts(poster, 1)  # the one post in the window
    gen(cohort[0], joined[0] + timedelta(hours=23))
    gen(cohort[1], joined[1] + timedelta(hours=1))
    gen(cohort[2], joined[2] + timedelta(days=2))
    gen(cohort[4], joined[4] + timedelta(hours=1))

    # Sessions of `poster` (30 min gap): an old first session; then in the window session A
    # (events at t, t+10m, plus a creation at t+20m), session B (events only, starts 2 h later),
    # session C (a creation 40 min after B's last event, alone).
    event(poster, old, post=post)
    t = now - timedelta(days=1)
    for minutes in (0, 10):
        event(poster, t + timedelta(minutes=minutes), post=post, kind=EventKind.WATCHED)
    gen(poster, t + timedelta(minutes=20))
    event(poster, t + timedelta(hours=2), post=post, kind=EventKind.WATCHED)
    gen(poster, t + timedelta(hours=2, minutes=40))

    # Inspiration: viewer sees 4 "following" impressions (one replayed), 2 "trending", and 3
    # remix_this cards; 2 creations carry following serve_ids, 1 a card's, 1 a trending one
    # from an impression outside the window (still counted: the creation is in the window).
    viewer = make_user(username="viewer")
    type(viewer).objects.filter(pk=viewer.pk).update(created_at=old)
    at = now - timedelta(days=2)
    following = [event(viewer, at, reason="following", post=post) for _ in range(4)]
    event(viewer, at, serve_id=following[0], post=post)  # a replayed impression
    for _ in range(2):
        event(viewer, at, reason="trending", post=post)
    cards = [event(viewer, at, reason="card-remix_this", post=post) for _ in range(3)]
    stale_trending = event(viewer, old, reason="trending", post=post)
    gen(viewer, at + timedelta(minutes=1), following[0])
    gen(viewer, at + timedelta(minutes=2), following[1])
    gen(viewer, at + timedelta(minutes=3), cards[0])
    gen(viewer, at + timedelta(minutes=4), stale_trending)
    gen(viewer, at + timedelta(minutes=5), "not-a-serve-id")
    return {"cohort": cohort, "poster": poster, "viewer": viewer}


def test_metrics_are_exact(make_user, fixture):
    staff = make_user(username="staff", is_staff=True)
    type(staff).objects.filter(pk=staff.pk).update(created_at=timezone.now() - timedelta(days=90))
    r = client_for(staff).get("/api/v1/metrics/creation?days=30")
    assert r.status_code == 200, r.content
    body = r.json()
    assert body["day_one_creation"] == {"users": 4, "created": 2, "share": 0.5}
    # poster: A (creation), B, C (creation) and the generation behind their post (just now)
    # are returning; viewer: one session of events and creations at `at` (their first was the
    # stale impression 60 days ago). First sessions (the cohort's) never count.
    assert body["returning_sessions"] == {"sessions": 5, "with_creation": 4, "share": 0.8}
    # Active in the window: new0, new1, new2, new4 (new3 did nothing), poster, viewer = 6.
    assert body["posting_users"] == {"users": 6, "posted": 1, "share": round(1 / 6, 6)}
    by_source = {row["reason"]: row for row in body["inspired"]["by_source"]}
    assert by_source["following"] == {
        "reason": "following",
        "impressions": 4,
        "creations": 2,
        "per_1000": 500.0,
    }
    assert by_source["trending"] == {
        "reason": "trending",
        "impressions": 2,
        "creations": 1,
        "per_1000": 500.0,
    }
    assert body["inspired"]["by_card_type"] == [
        {"card_type": "remix_this", "impressions": 3, "creations": 1, "per_1000": 333.333}
    ]


def test_metrics_are_staff_only(api, anon):
    assert_error(api.get("/api/v1/metrics/creation"), 403, "permission_denied")
    assert anon.get("/api/v1/metrics/creation").status_code == 401


def test_bad_window_is_rejected(make_user):
    staff = client_for(make_user(username="staff", is_staff=True))
    assert_error(staff.get("/api/v1/metrics/creation?days=0"), 400, "invalid", "days")


def test_admin_dashboard_renders_a_chart(make_user, fixture, client):
    admin_user = make_user(username="root", is_staff=True, is_superuser=True)
    client.force_login(admin_user)
    index = client.get("/admin/")
    assert index.status_code == 200
    assert b"/admin/feed/post/creation-metrics/" in index.content
    r = client.get("/admin/feed/post/creation-metrics/?days=30")
    assert r.status_code == 200
    html = r.content.decode()
    assert "<svg" in html and "<rect" in html
    assert "2/4 users" in html and "remix_this" in html
    assert client.get("/admin/feed/post/").status_code == 200

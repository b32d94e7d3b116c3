"""The Following and Latest feeds: inboxes, fallbacks and cursor stability."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.services import follow_create, follow_delete
from config.core.redis import redis_client
from feed import inbox
from feed.models import Post
from tests.conftest import client_for

pytestmark = pytest.mark.django_db


def scroll(client, kind: str, limit: int, *, between=None) -> list[str]:
    """Every post id of the feed, page by page; `between(page_no)` runs between pages."""
    url = f"/api/v1/feed?kind={kind}&limit={limit}"
    ids, page = [], 0
    while url:
        r = client.get(url)
        assert r.status_code == 200, r.content
        body = r.json()
        assert len(body["results"]) <= limit
        ids += [item["post"]["id"] for item in body["results"]]
        assert all(item["reason"] == kind for item in body["results"])
        url = body["next"]
        page += 1
        if between and url:
            between(page)
    return ids


@pytest.fixture
def network(user, make_user, make_post):
    """alice follows three makers who posted 25 times in all, plus one stranger's posts."""
    makers = [make_user(username=f"maker{i}") for i in range(3)]
    for maker in makers:
        follow_create(follower=user, followee=maker)
    stranger = make_user(username="stranger")
    start = timezone.now() - timedelta(hours=1)
    posts = []
    for i in range(25):
        post = make_post(makers[i % 3])
        # Distinct, known times; two pairs share a timestamp to exercise the id tiebreak.
        at = start + timedelta(seconds=i - (i in (7, 15)))
        Post.objects.filter(pk=post.pk).update(created_at=at)
        posts.append(post)
    make_post(stranger)
    expected = [
        str(p.pk) for p in Post.objects.filter(author__in=makers).order_by("-created_at", "-id")
    ]
    return {"makers": makers, "stranger": stranger, "expected": expected}


def test_following_builds_an_inbox_and_pages_in_order(user, network):
    client = client_for(user)
    assert not redis_client().exists(inbox.inbox_key(user.pk))
    assert scroll(client, "following", 10) == network["expected"]
    # The first read built the inbox (25 posts + the sentinel), each post with its author.
    members = redis_client().zrange(inbox.inbox_key(user.pk), 0, -1)
    authors = dict(Post.objects.values_list("pk", "author_id"))
    assert sorted(m.decode() for m in members) == sorted(
        ["~", *(inbox.member(pid, authors[uuid.UUID(pid)]) for pid in network["expected"])]
    )


def test_publish_fans_out_to_live_inboxes(user, network, make_post, transactional_db):
    client = client_for(user)
    scroll(client, "following", 50)  # alive now
    fresh = make_post(network["makers"][0])
    entry = inbox.member(fresh.pk, fresh.author_id)
    assert redis_client().zscore(inbox.inbox_key(user.pk), entry) is not None
    assert scroll(client, "following", 50)[0] == str(fresh.pk)


def test_database_fallback_when_redis_is_down(user, network, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there
    assert scroll(client_for(user), "following", 7) == network["expected"]


def test_truncated_inbox_continues_from_the_database(user, network, monkeypatch):
    monkeypatch.setattr(inbox, "INBOX_SIZE", 6)
    assert scroll(client_for(user), "following", 4) == network["expected"]
    assert redis_client().zcard(inbox.inbox_key(user.pk)) == 7


def test_unfollow_and_new_follow_apply_at_once(user, network, make_post):
    client = client_for(user)
    scroll(client, "following", 50)
    gone = network["makers"][0]
    follow_delete(follower=user, followee=gone)
    ids = scroll(client, "following", 50)
    assert ids == [
        pid for pid in network["expected"] if Post.objects.get(pk=pid).author_id != gone.pk
    ]
    follow_create(follower=user, followee=network["stranger"])
    inbox.drop(user_id=user.pk)
    assert len(scroll(client, "following", 50)) == len(ids) + 1


@pytest.mark.parametrize("kind", ["following", "latest"])
@pytest.mark.parametrize("redis_up", [True, False])
def test_pages_never_repeat_or_skip_while_people_post(
    user, network, make_post, settings, kind, redis_up
):
    if not redis_up:
        settings.REDIS_URL = "redis://127.0.0.1:1/0"
    client = client_for(user)
    before = scroll(client, kind, 100)

    def post_more(page_no):
        for maker in network["makers"]:
            make_post(maker)
        make_post(network["stranger"])

    during = scroll(client, kind, 6, between=post_more)
    assert during == before
    assert len(set(during)) == len(during)


def test_big_accounts_fan_out_on_a_worker_task(
    user, network, make_post, monkeypatch, transactional_db
):
    from feed import services, tasks

    monkeypatch.setattr(services, "INLINE_FANOUT_MAX", 0)
    client = client_for(user)
    scroll(client, "following", 50)  # alive now
    fresh = make_post(network["makers"][0])
    key, entry = inbox.inbox_key(user.pk), inbox.member(fresh.pk, fresh.author_id)
    assert redis_client().zscore(key, entry) is None  # not inline
    assert tasks.post_fanout(str(fresh.pk)) == 1  # the task body, as the worker runs it
    assert redis_client().zscore(key, entry) is not None

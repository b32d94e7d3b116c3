"""For You ranked ahead of the request (feed.ranking.snapshot): sessions continue down one
ranked order, a worker re-ranks it when it is old, and nothing cached outlives a block, a
removal, a revoked cameo, a preference change or a "see less"."""

from __future__ import annotations

import time

import pytest

from accounts.services import block_create, follow_create
from cameos.models import Audience
from cameos.services import cameo_revoke
from config.core.redis import redis_client
from feed import tasks
from feed.models import Post, PostState
from feed.ranking import snapshot
from feed.serving import serve_id_make
from tests.conftest import client_for
from tests.feed.test_for_you import bulk_posts, post_ids, scroll

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _no_cards(settings):
    settings.RIFF_FEED_CARD_EVERY = 10_000
    settings.RIFF_FEED_CARD_MAX_GAP = 10_000


@pytest.fixture
def makers(make_user):
    return [make_user(username=f"maker{i}") for i in range(4)]


@pytest.fixture
def posts(makers):
    return [p for m in makers for p in bulk_posts(m, 3)]


def first_page(client, limit=3) -> dict:
    r = client.get(f"/api/v1/feed?kind=for_you&limit={limit}")
    assert r.status_code == 200, r.content
    return r.json()


def test_new_sessions_continue_the_order_without_ranking_again(user, posts, monkeypatch):
    client = client_for(user)
    one = post_ids(first_page(client)["results"])
    calls = []
    import feed.ranking as ranking

    real = ranking.build_order
    monkeypatch.setattr(ranking, "build_order", lambda u: calls.append(u) or real(u))
    two = post_ids(first_page(client)["results"])
    three = post_ids(first_page(client)["results"])
    assert calls == []  # served from the order ranked for the first session
    assert len(one) == len(two) == len(three) == 3
    assert not set(one) & set(two) and not set(two) & set(three) and not set(one) & set(three)
    cur = snapshot.current(user_id=user.pk)
    assert (cur.pos, cur.size) == (9, 12)
    # Three left, a page of four can't be served from it: ranked again, in the request.
    four = post_ids(first_page(client, limit=4)["results"])
    assert len(calls) == 1 and len(four) == 4
    assert snapshot.current(user_id=user.pk).session != cur.session


def test_an_old_order_is_reranked_on_a_worker_for_the_next_session(
    user, posts, make_user, settings, monkeypatch
):
    client = client_for(user)
    first_page(client)
    cur = snapshot.current(user_id=user.pk)
    redis_client().hset(f"riff:fy:cur:{user.pk}", "built", time.time() - 700)
    sent = []
    monkeypatch.setattr("feed.ranking.publish", lambda task, *args: sent.append((task, args)))
    newest = bulk_posts(make_user(username="late"), 1, minutes_ago=0)[0]
    page = first_page(client)
    # Served from the old order at once (no new post yet), and a re-rank asked for, once.
    assert str(newest.pk) not in post_ids(page["results"])
    assert sent == [(tasks.feed_order_refresh, (str(user.pk),))]
    first_page(client)
    assert len(sent) == 1
    assert tasks.feed_order_refresh(str(user.pk)) == 13
    fresh = snapshot.current(user_id=user.pk)
    assert fresh.session != cur.session and fresh.pos == 0
    assert str(newest.pk) in post_ids(scroll(client, 20))


def test_an_order_too_old_is_ranked_again_in_the_request(user, posts, settings):
    client = client_for(user)
    first_page(client)
    cur = snapshot.current(user_id=user.pk)
    redis_client().hset(
        f"riff:fy:cur:{user.pk}", "built", time.time() - settings.RIFF_FEED_ORDER_MAX_AGE_SECONDS
    )
    first_page(client)
    assert snapshot.current(user_id=user.pk).session != cur.session


def test_blocks_removals_and_revocations_apply_to_the_next_page(
    user, make_user, make_post, active_cameo, posts, makers
):
    friend = make_user(username="friend")
    follow_create(follower=user, followee=friend)
    cameo = active_cameo(friend, audience=Audience.EVERYONE)
    cameo_posts = [make_post(friend, cameos=[cameo]) for _ in range(2)]
    client = client_for(user)
    page = first_page(client, limit=2)
    shown = set(post_ids(page["results"]))
    # Hidden before the next page: one maker blocked, another maker's post removed, the
    # friend's cameo revoked (its posts go down through the cameo hooks).
    blocked, other = [m for m in makers if not {str(p.pk) for p in m.posts.all()} & shown][:2]
    block_create(blocker=user, blocked=blocked)
    removed = other.posts.first()
    Post.objects.filter(pk=removed.pk).update(state=PostState.REMOVED)
    cameo_revoke(cameo=cameo, actor=friend)
    hidden = {str(p.pk) for p in blocked.posts.all()} | {str(removed.pk)}
    hidden |= {str(p.pk) for p in cameo_posts if str(p.pk) not in shown}
    assert (
        Post.objects.filter(pk__in=[p.pk for p in cameo_posts], state=PostState.LIVE).count() == 0
    )
    rest, url = [], page["next"]
    while url:
        body = client.get(url).json()
        rest += post_ids(body["results"])
        url = body["next"]
    assert rest and not set(rest) & hidden
    everything = {str(pk) for pk in Post.objects.values_list("pk", flat=True)}
    assert len(rest) == len(set(rest)) and shown | set(rest) == everything - hidden


def test_preferences_and_see_less_drop_the_order(user, posts, django_capture_on_commit_callbacks):
    client = client_for(user)
    page = first_page(client)
    assert snapshot.current(user_id=user.pk) is not None
    with django_capture_on_commit_callbacks(execute=True):
        r = client.put(
            "/api/v1/feed/preferences", {"steer": "", "personalized": False}, format="json"
        )
    assert r.status_code == 200
    assert snapshot.current(user_id=user.pk) is None
    page = first_page(client)
    item = page["results"][0]
    assert snapshot.current(user_id=user.pk) is not None
    see_less = {"post_id": item["post"]["id"], "serve_id": item["serve_id"], "event": "see_less"}
    with django_capture_on_commit_callbacks(execute=True):
        r = client.post("/api/v1/feed/events", {"events": [see_less]}, format="json")
    assert r.status_code == 202 and r.json()["accepted"] == 1
    assert snapshot.current(user_id=user.pk) is None
    # Other events leave it alone.
    first_page(client)
    with django_capture_on_commit_callbacks(execute=True):
        r = client.post(
            "/api/v1/feed/events",
            {
                "events": [
                    {
                        "post_id": item["post"]["id"],
                        "serve_id": serve_id_make(user_id=user.pk, reason="trending"),
                        "event": "impression",
                    }
                ]
            },
            format="json",
        )
    assert r.status_code == 202
    assert snapshot.current(user_id=user.pk) is not None


def test_pages_of_one_session_never_repeat_or_skip(user, posts, make_user):
    client = client_for(user)

    def publish(page):
        bulk_posts(make_user(username=f"new{page}"), 1, minutes_ago=0)

    items = scroll(client, 4, between=publish)
    seen = post_ids(items)
    assert len(seen) == len(set(seen)) == 12  # the twelve ranked; arrivals wait for a new order


def test_a_page_of_an_ordered_session_is_two_redis_round_trips(user, posts, redis_sends, settings):
    """A For You page that continues an order talks to Redis twice: the token check's round
    trip (with the rate limit) also opens it (where the scroll stands, the card state and the
    page's first slice: from the cursor for a later page, from where the current order stands
    for a first page), one more closes it (the card state and how far the viewer read). Each
    is a connection's send. (Near the end of an order a page also asks a worker for the next
    one: two sends more, once; not here.)"""
    settings.RIFF_FEED_ORDER_LOW_PAGES = 0
    client = client_for(user)
    body = first_page(client)  # ranks the order (in the request: a first visit)
    sends = redis_sends
    sends.clear()
    second = client.get(body["next"])
    assert second.status_code == 200 and second.json()["results"]
    next_page = len(sends)
    sends.clear()
    again = first_page(client)  # a new session continues down the same order
    assert again["results"]
    assert (next_page, len(sends)) == (2, 2)


def test_an_order_nearly_used_up_is_ranked_again_on_a_worker(user, posts, monkeypatch):
    """Twelve posts, pages of three, RIFF_FEED_ORDER_LOW_PAGES = 2: the session that leaves
    fewer than six after its first page asks a worker once, and the next session starts on
    the order the worker ranked, with no ranking in the request."""
    sent = []
    monkeypatch.setattr("feed.ranking.publish", lambda task, *args: sent.append((task, args)))
    client = client_for(user)
    first_page(client)  # ranked in the request (first visit); 9 left after it
    first_page(client)  # 6 left after it
    assert sent == []
    cur = snapshot.current(user_id=user.pk)
    first_page(client)  # 3 left after it
    assert sent == [(tasks.feed_order_refresh, (str(user.pk),))]
    first_page(client)  # asked once a minute at most
    assert len(sent) == 1
    assert tasks.feed_order_refresh(str(user.pk)) == 12
    fresh = snapshot.current(user_id=user.pk)
    assert fresh.session != cur.session and fresh.pos == 0
    calls = []
    import feed.ranking as ranking

    real = ranking.build_order
    monkeypatch.setattr(ranking, "build_order", lambda u: calls.append(u) or real(u))
    page = first_page(client)
    assert calls == [] and len(page["results"]) == 3
    assert snapshot.current(user_id=user.pk).pos == 3


def test_a_scroll_near_the_end_of_its_order_asks_for_the_next_one(user, posts, monkeypatch):
    sent = []
    monkeypatch.setattr("feed.ranking.publish", lambda task, *args: sent.append((task, args)))
    client = client_for(user)
    page = first_page(client, limit=2)  # 10 left
    page = client.get(page["next"]).json()  # 8 left
    assert sent == []
    page = client.get(page["next"]).json()  # 6 left
    page = client.get(page["next"]).json()  # 4 left: two pages
    assert sent == []
    page = client.get(page["next"]).json()  # 2 left: under two pages
    assert sent == [(tasks.feed_order_refresh, (str(user.pk),))]
    # The scroll goes on down its own order, whatever the worker does.
    assert len(scroll_from(client, page)) == 2
    assert len(sent) == 1


def scroll_from(client, page) -> list[str]:
    out = []
    while page["next"]:
        page = client.get(page["next"]).json()
        out += post_ids(page["results"])
    return out


def test_a_refresh_that_cant_be_asked_for_never_fails_the_page(user, posts, monkeypatch):
    """Redis refusing the once-a-minute mark near the end of an order: the page is served and
    the refusal recorded."""
    import redis as redis_lib

    import feed.ranking as ranking

    client = client_for(user)
    page = first_page(client, limit=5)  # 7 left: the next page leaves 2
    recorded = []
    monkeypatch.setattr(ranking, "degraded", lambda *a: recorded.append(a))
    real = ranking.redis_client

    def refusing():
        client = real()

        class Refusing:
            def __getattr__(self, name):
                return getattr(client, name)

            def set(self, name, *a, **k):
                if name.startswith("riff:fy:refreshing:"):
                    raise redis_lib.exceptions.ConnectionError("down")
                return client.set(name, *a, **k)

        return Refusing()

    monkeypatch.setattr(ranking, "redis_client", refusing)
    r = client.get(page["next"])
    assert r.status_code == 200 and len(r.json()["results"]) == 5
    assert recorded == [("feed_order_refresh", user.pk)]

"""feed.postcache: feed rows from each process's memory, checked against stamps in Redis.

Every test warms the caches, makes one kind of change through the app's own code, and then
holds the cached answer equal to the database's (`feed.hydrate.posts_page`, the statement the
caches stand in for) on the very next read."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.models import User
from accounts.services import block_create, block_delete, follow_create, follow_delete, user_update
from cameos.models import Audience
from cameos.services import cameo_revoke
from config.core.redis import redis_client
from feed import postcache, services
from feed.hydrate import posts_page
from feed.models import Post
from generation.models import Video
from tests.test_redis_outage import point_app_at, redis_down  # noqa: F401 (fixtures)

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(user, make_user, make_post, active_cameo):
    friend = make_user(username="friend", display_name="Friend")
    stranger = make_user(username="stranger")
    follow_create(follower=user, followee=friend)
    cameo = active_cameo(friend, audience=Audience.EVERYONE, handle="friendcam")
    posts = {
        "plain": make_post(friend, caption="plain"),
        "cameo": make_post(friend, cameos=[cameo], caption="with cameo"),
        "stranger": make_post(stranger, caption="by a stranger"),
        "mine": make_post(user, caption="my own"),
    }
    return {"friend": friend, "stranger": stranger, "cameo": cameo, "posts": posts}


def _ids(world) -> list:
    return [p.pk for p in world["posts"].values()]


def _same(user, ids, *, followed=False) -> list:
    """The cached rows, after checking them against the database's."""
    cached = postcache.rows_for(user.pk, ids, followed=followed)
    fresh = posts_page(viewer_id=user.pk, ids=ids, followed_by=user.pk if followed else None)
    assert cached is not None
    assert [(r.id, r.created_at, r.values) for r in cached] == [
        (r.id, r.created_at, r.values) for r in fresh
    ]
    return cached


def _latest_same(user, limit=50) -> list:
    cached = postcache.latest_rows(user.pk, None, limit)
    fresh = posts_page(viewer_id=user.pk, limit=limit)
    assert cached is not None
    assert [(r.id, r.values) for r in cached] == [(r.id, r.values) for r in fresh]
    return cached


def _by_id(rows) -> dict:
    return {r.id: r for r in rows}


def _warm(user, world) -> None:
    _same(user, _ids(world))
    _same(user, _ids(world), followed=True)
    _latest_same(user)


def test_a_warm_page_reads_nothing_from_the_database(user, world):
    _warm(user, world)
    with CaptureQueriesContext(connection) as queries:
        rows = postcache.rows_for(user.pk, _ids(world))
        latest = postcache.latest_rows(user.pk, None, 50)
    assert len(queries) == 0
    assert {r.id for r in rows} == set(_ids(world))
    assert [r.id for r in latest][:4] == list(reversed(_ids(world)))


def test_a_like_shows_on_the_next_read(user, other, world):
    _warm(user, world)
    post = world["posts"]["plain"]
    services.like_set(user=user, post=post, liked=True)
    row = _by_id(_same(user, _ids(world)))[post.pk]
    assert (row.values[-1], row.values[22]) == (True, 1)  # liked by me, like count
    services.like_set(user=other, post=post, liked=True)
    assert _by_id(_same(user, _ids(world)))[post.pk].values[22] == 2
    services.like_set(user=user, post=post, liked=False)
    row = _by_id(_latest_same(user))[post.pk]
    assert (row.values[-1], row.values[22]) == (False, 1)


def test_comments_and_views_show_on_the_next_read(user, other, world):
    _warm(user, world)
    post = world["posts"]["stranger"]
    services.comment_create(user=other, post=post, body="hi")
    assert _by_id(_same(user, _ids(world)))[post.pk].values[23] == 1
    services.counter_add(post_id=post.pk, field="views", delta=3)
    assert _by_id(_latest_same(user))[post.pk].values[25] == 3


def test_a_removed_post_leaves_and_a_restored_one_comes_back(user, world):
    _warm(user, world)
    post = world["posts"]["stranger"]
    services.post_takedown(post=post, reason="test")
    assert post.pk not in _by_id(_same(user, _ids(world)))
    assert post.pk not in _by_id(_latest_same(user))
    services.post_restore(post=post)
    assert post.pk in _by_id(_same(user, _ids(world)))
    assert post.pk in _by_id(_latest_same(user))


def test_an_authors_delete_and_a_revoked_cameo_take_posts_out(user, world):
    _warm(user, world)
    services.post_delete(user=world["friend"], post=world["posts"]["plain"])
    cameo = world["cameo"]
    cameo_revoke(cameo=cameo, actor=cameo.owner)
    rows = _by_id(_same(user, _ids(world)))
    assert world["posts"]["plain"].pk not in rows and world["posts"]["cameo"].pk not in rows
    assert world["posts"]["cameo"].pk not in _by_id(_latest_same(user))


@pytest.mark.parametrize("direction", ["viewer_blocks", "author_blocks"])
def test_a_block_either_way_hides_the_author_until_it_is_lifted(user, world, direction):
    _warm(user, world)
    stranger = world["stranger"]
    blocker, blocked = (user, stranger) if direction == "viewer_blocks" else (stranger, user)
    block_create(blocker=blocker, blocked=blocked)
    assert world["posts"]["stranger"].pk not in _by_id(_same(user, _ids(world)))
    assert world["posts"]["stranger"].pk not in _by_id(_latest_same(user))
    block_delete(blocker=blocker, blocked=blocked)
    assert world["posts"]["stranger"].pk in _by_id(_latest_same(user))


def test_a_follow_and_an_unfollow_change_the_followed_rows(user, world):
    _warm(user, world)
    follow_delete(follower=user, followee=world["friend"])
    assert _same(user, _ids(world), followed=True) == []
    follow_create(follower=user, followee=world["stranger"])
    rows = _same(user, _ids(world), followed=True)
    assert [r.id for r in rows] == [world["posts"]["stranger"].pk]


def test_a_deactivated_author_leaves_through_a_queryset_update(user, world):
    """Moderation bans write with `update()`, which sends no signal."""
    _warm(user, world)
    User.objects.filter(pk=world["friend"].pk).update(is_active=False)
    assert world["posts"]["plain"].pk not in _by_id(_same(user, _ids(world)))
    User.objects.filter(pk=world["friend"].pk).update(is_active=True)
    assert world["posts"]["plain"].pk in _by_id(_latest_same(user))


def test_an_authors_new_name_shows_on_the_next_read(user, world):
    _warm(user, world)
    user_update(user=world["friend"], data={"display_name": "New Name"})
    row = _by_id(_same(user, _ids(world)))[world["posts"]["plain"].pk]
    assert row.values[10] == "New Name"


def test_a_changed_video_shows_on_the_next_read(user, world):
    _warm(user, world)
    video = Video.objects.get(pk=world["posts"]["plain"].video_id)
    video.seconds = 7.5
    video.save(update_fields=["seconds"])
    row = _by_id(_same(user, _ids(world)))[world["posts"]["plain"].pk]
    assert float(row.values[15]) == 7.5


def test_a_new_post_tops_latest_at_once(user, world, make_post):
    _warm(user, world)
    fresh = make_post(world["stranger"], caption="just now")
    assert _latest_same(user)[0].id == fresh.pk


def test_latest_pages_follow_the_keyset_and_give_way_past_the_window(user, world, monkeypatch):
    rows = _latest_same(user)
    last = rows[1]
    page = postcache.latest_rows(user.pk, (last.created_at, last.id), 10)
    fresh = posts_page(viewer_id=user.pk, before=(last.created_at, last.id), limit=10)
    assert [r.id for r in page] == [r.id for r in fresh] == [r.id for r in rows[2:]]
    # A window that ends before the page does, while more posts may exist, is not an answer.
    monkeypatch.setattr(postcache, "WINDOW", 2)
    monkeypatch.setattr(postcache, "_WINDOW_SQL", postcache._WINDOW_SQL[:-3] + " 2")
    postcache.forget_all()
    assert postcache.latest_rows(user.pk, None, 3) is None


def test_another_processes_entries_are_refused_once_their_stamp_goes(user, world):
    """What each process holds is checked against Redis, not trusted: a stamp deleted by a
    change elsewhere (here: by hand) makes the next read go to the database."""
    _warm(user, world)
    post = world["posts"]["plain"]
    # A change this process did not see: the row moves, then only the stamp goes.
    Post.objects.filter(pk=post.pk).update(caption="edited elsewhere")
    assert _by_id(postcache.rows_for(user.pk, _ids(world)))[post.pk].values[1] == "plain"
    postcache.posts_changed([post.pk])
    assert _by_id(_same(user, _ids(world)))[post.pk].values[1] == "edited elsewhere"


@pytest.mark.usefixtures("redis_down")
def test_without_redis_the_database_answers(user, world):
    assert postcache.rows_for(user.pk, _ids(world)) is None
    assert postcache.latest_rows(user.pk, None, 10) is None


def test_a_cold_page_is_one_statement_and_the_handles_of_its_cameos(user, world):
    ids = _ids(world)
    with CaptureQueriesContext(connection) as queries:
        rows = postcache.rows_for(user.pk, ids)
    assert len(rows) == 4
    assert len(queries) == 2  # one post shows a cameo: its handle, read once with the card
    postcache.forget_all()
    plain = [pk for pk in ids if pk != world["posts"]["cameo"].pk]
    with CaptureQueriesContext(connection) as queries:
        assert len(postcache.rows_for(user.pk, plain)) == 3
    assert len(queries) == 1
    cameo_row = _by_id(rows)[world["posts"]["cameo"].pk]
    assert cameo_row.handles == ((str(world["cameo"].pk), "friendcam"),)


def test_entries_are_not_trusted_past_their_age(user, world, settings):
    _warm(user, world)
    settings.RIFF_FEED_CACHE_SECONDS = 0.000001
    with CaptureQueriesContext(connection) as queries:
        _same(user, _ids(world))
    assert len(queries) >= 2  # the cache's own statement, then the comparison's


def test_a_latest_scroll_neither_repeats_nor_skips_while_posts_arrive(
    user, world, make_user, make_post, api
):
    """Through the API, with the caches warm: pages of two follow the keyset while new posts
    arrive between them, and a block made mid-scroll takes effect on the next page."""
    more = [make_post(world["stranger"], caption=f"s{i}") for i in range(3)]
    expected = [r.id for r in posts_page(viewer_id=user.pk, limit=50)]
    api.get("/api/v1/feed?kind=latest&limit=2")  # warm
    seen, url, page = [], "/api/v1/feed?kind=latest&limit=2", 0
    while url:
        body = api.get(url).json()
        seen += [item["post"]["id"] for item in body["results"]]
        url, page = body["next"], page + 1
        make_post(make_user(username=f"late{page}"), caption="arrives mid-scroll")
        if page == 2:
            block_create(blocker=user, blocked=world["friend"])
    friend_posts = {str(p.pk) for p in (world["posts"]["plain"], world["posts"]["cameo"])}
    assert len(seen) == len(set(seen))
    # Everything that was there at the start, in order, except the friend's posts once blocked.
    after_block = [pid for pid in seen[4:] if pid in friend_posts]
    assert after_block == []
    assert [pid for pid in map(str, expected) if pid in seen] == seen
    assert set(map(str, expected)) - set(seen) <= friend_posts
    assert str(more[-1].pk) == seen[0]


def test_a_warm_latest_page_rides_the_token_checks_round_trip(user, world, api, redis_sends):
    """Through the API: the page's stamps are read on authentication's round trip
    (feed.feeds.latest_preload), so a page from warm caches makes one Redis round trip and
    reads nothing from PostgreSQL, the cursor's next page too."""
    api.get("/api/v1/feed?kind=latest&limit=2")  # warms the token and the page
    first = api.get("/api/v1/feed?kind=latest&limit=2").json()
    api.get(first["next"])  # warms the next page's cards
    redis_sends.clear()
    with CaptureQueriesContext(connection) as queries:
        again = api.get("/api/v1/feed?kind=latest&limit=2").json()
        second = api.get(first["next"]).json()
    assert (len(redis_sends), [q["sql"] for q in queries]) == (2, [])
    assert [i["post"]["id"] for i in again["results"]] == [
        i["post"]["id"] for i in first["results"]
    ]
    assert len(second["results"]) == 2 and second["results"][0] != again["results"][0]


def test_a_warm_following_page_rides_the_token_checks_round_trip(user, world, api, redis_sends):
    """Following's inbox is read by a script that reads the stamps of its entries too (their
    posts', their authors', from `post|author` members, and the viewer's), on the token
    check's round trip: a warm page, first or cursor, is one round trip and no statement."""
    first = api.get("/api/v1/feed?kind=following&limit=1").json()  # builds the inbox
    api.get(first["next"])
    redis_sends.clear()
    with CaptureQueriesContext(connection) as queries:
        again = api.get("/api/v1/feed?kind=following&limit=1").json()
    assert (len(redis_sends), [q["sql"] for q in queries]) == (1, [])
    with CaptureQueriesContext(connection) as queries:
        second = api.get(first["next"]).json()
    assert (len(redis_sends), [q["sql"] for q in queries]) == (2, [])
    friend_posts = [str(world["posts"][k].pk) for k in ("cameo", "plain")]
    assert [i["post"]["id"] for i in again["results"] + second["results"]] == friend_posts


def test_inbox_members_without_their_author_still_serve(user, world, api, redis_sends):
    """Members written before the author was (a bare post id): the page reads those authors'
    stamps in a round trip of its own, and serves the same posts."""
    from config.core.redis import redis_client
    from feed import inbox

    first = _following_ids(api)
    key = inbox.inbox_key(user.pk)
    client = redis_client()
    for member, score in client.zrange(key, 0, -1, withscores=True):
        if member != b"~":
            client.zrem(key, member)
            client.zadd(key, {member.split(b"|")[0]: score})
    redis_sends.clear()
    with CaptureQueriesContext(connection) as queries:
        assert _following_ids(api) == first
    assert (len(redis_sends), [q["sql"] for q in queries]) == (2, [])


def test_a_warm_for_you_page_reads_its_stamps_with_its_slice(
    user, other, world, api, redis_sends, settings
):
    """For You's slices are read by a script that reads their stamps too (their posts', their
    authors', the viewer's), and the order answers the viewer's likes (ranking.snapshot's
    facts): once the cards are held, a page, first or not, is the opening round trip (on the
    token check's) and the closing one, and no statement. (This order is short: the ask for
    the next one near its end, two sends more, is kept out.)"""
    settings.RIFF_FEED_ORDER_LOW_PAGES = 0
    services.like_set(user=user, post=world["posts"]["stranger"], liked=True)
    _same(other, _ids(world))
    _same(other, _ids(world))  # cards and authors held
    first = api.get("/api/v1/feed?kind=for_you&limit=1").json()  # ranks the order
    assert first["next"]
    redis_sends.clear()
    with CaptureQueriesContext(connection) as queries:
        second = api.get(first["next"]).json()
        third = api.get("/api/v1/feed?kind=for_you&limit=1").json()  # a session goes on
    assert (len(redis_sends), [q["sql"] for q in queries]) == (4, [])
    served = [page["results"][0]["post"] for page in (first, second, third)]
    assert len({post["id"] for post in served}) == 3
    for post in served:
        fresh = posts_page(viewer_id=user.pk, ids=[post["id"]])[0]
        assert (post["liked_by_me"], post["like_count"]) == (fresh.values[-1], fresh.values[22])


def test_a_for_you_order_answers_the_viewers_likes_until_they_change(user, other, world, api):
    """An order keeps whether the viewer liked each post when it was ranked, and the stamps
    of their graph and likes taken before: while those hold, a page needs nothing of the
    viewer from PostgreSQL, in a process that never read them either. A like, or a block
    either way, ends that; the page then reads them (and shows the change)."""
    from feed.ranking import snapshot

    liked = world["posts"]["stranger"]
    services.like_set(user=user, post=liked, liked=True)
    _same(other, _ids(world))
    _same(other, _ids(world))  # cards and authors held
    first = api.get("/api/v1/feed?kind=for_you&limit=1").json()  # ranks the order
    session = snapshot.current(user_id=user.pk).session
    order = [pid for pid, _ in snapshot.snapshot_read(user_id=user.pk, session=session)]
    raw = redis_client().lrange(f"riff:fy:snap:{user.pk}:{session}", 0, -1)
    authors = {str(p.pk): str(p.author_id) for p in world["posts"].values()}
    assert [r.decode() for r in raw] == [
        f"{pid}|{reason}|{authors[pid]}|{'1' if pid == str(liked.pk) else ''}"
        for pid, reason in snapshot.snapshot_read(user_id=user.pk, session=session)
    ]
    postcache.forget_all()
    _same(other, _ids(world))
    _same(other, _ids(world))  # cards again, but nothing of the viewer
    with CaptureQueriesContext(connection) as queries:
        second = api.get(first["next"]).json()
    assert [q["sql"] for q in queries] == []
    assert second["results"][0]["post"]["id"] == order[1]
    # The viewer unlikes the post the next page shows (or likes it): the order's likes go.
    post = Post.objects.get(pk=order[2])
    was = post.pk == liked.pk
    services.like_set(user=user, post=post, liked=not was)
    third = api.get(second["next"]).json()["results"][0]["post"]
    assert (third["id"], third["liked_by_me"]) == (order[2], not was)


def _viewer_part(sql: str) -> bool:
    return any(table in sql for table in ("feed_like", "accounts_block", "accounts_follow"))


def test_a_for_you_page_with_cold_cards_reads_only_the_cards(user, world, api):
    """Cards a process lacks are read without the viewer's likes, blocks and follows while the
    order's facts answer those (For You pages show mostly posts new to the process); once the
    facts no longer hold, the same read takes the viewer's part too, and the page shows it."""
    from feed.ranking import snapshot

    services.like_set(user=user, post=world["posts"]["stranger"], liked=True)
    first = api.get("/api/v1/feed?kind=for_you&limit=1").json()  # ranks the order
    session = snapshot.current(user_id=user.pk).session
    order = [pid for pid, _ in snapshot.snapshot_read(user_id=user.pk, session=session)]
    postcache.forget_all()
    with CaptureQueriesContext(connection) as queries:
        second = api.get(first["next"]).json()
    statements = [q["sql"] for q in queries if "feed_post p" in q["sql"]]
    assert len(statements) == 1 and not _viewer_part(statements[0])
    assert not any(_viewer_part(q["sql"]) for q in queries)
    post = second["results"][0]["post"]
    fresh = posts_page(viewer_id=user.pk, ids=[post["id"]])[0]
    assert (post["id"], post["liked_by_me"], post["like_count"]) == (
        order[1],
        fresh.values[-1],
        fresh.values[22],
    )
    # A like of the next post changes the viewer's likes stamp: the order's facts go, and the
    # cold read takes the viewer's part (the like shows).
    nxt = Post.objects.get(pk=order[2])
    services.like_set(user=user, post=nxt, liked=True)
    postcache.forget_all()
    with CaptureQueriesContext(connection) as queries:
        third = api.get(second["next"]).json()["results"][0]["post"]
    statements = [q["sql"] for q in queries if "feed_post p" in q["sql"]]
    assert len(statements) == 1 and _viewer_part(statements[0])
    assert (third["id"], third["liked_by_me"]) == (order[2], True)


def _following_ids(api, limit=10) -> list[str]:
    body = api.get(f"/api/v1/feed?kind=following&limit={limit}").json()
    return [item["post"]["id"] for item in body["results"]]


def test_a_first_page_from_the_caches_still_sees_every_change_at_once(
    user, world, api, redis_sends
):
    """The stamps that ride the token check are read by that request, so a change made since
    the last page shows on the next one: a removal and a restore, a block, a follow and an
    unfollow."""
    friend, posts = world["friend"], world["posts"]
    plain, cameo = str(posts["plain"].pk), str(posts["cameo"].pk)
    assert _following_ids(api) == [cameo, plain]
    redis_sends.clear()
    assert _following_ids(api) == [cameo, plain]  # from the caches: one round trip
    assert len(redis_sends) == 1
    services.post_takedown(post=posts["cameo"], reason="test")
    assert _following_ids(api) == [plain]
    services.post_restore(post=posts["cameo"])
    assert _following_ids(api) == [cameo, plain]
    block_create(blocker=friend, blocked=user)  # ends the follow too
    assert _following_ids(api) == []
    block_delete(blocker=friend, blocked=user)
    assert _following_ids(api) == []
    follow_create(follower=user, followee=friend)
    assert _following_ids(api) == [cameo, plain]
    follow_delete(follower=user, followee=friend)
    assert _following_ids(api) == []


def test_a_like_shows_even_after_another_viewer_read_the_post_again(user, other, world):
    """The viewer's like of a post is kept with the stamp of the post it was read under:
    another viewer's page reading the changed card first must not leave the liker's old
    answer standing."""
    _warm(user, world)
    _same(other, _ids(world))
    post = world["posts"]["stranger"]
    services.like_set(user=user, post=post, liked=True)
    _same(other, _ids(world))  # reads the card again, under its new stamp
    row = _by_id(_same(user, _ids(world)))[post.pk]
    assert (row.values[-1], row.values[22]) == (True, 1)


def test_a_second_viewer_of_held_cards_costs_one_light_statement(user, other, world):
    """Cards and authors are shared by viewers; what one viewer has to do with them (likes,
    blocks, follows) is one statement that reads no post."""
    _warm(user, world)
    services.like_set(user=other, post=world["posts"]["plain"], liked=True)
    _same(user, _ids(world))  # the liked post's card is read again
    with CaptureQueriesContext(connection) as queries:
        rows = postcache.rows_for(other.pk, _ids(world))
    assert len(queries) == 1 and "feed_post" not in queries[0]["sql"]
    assert _by_id(rows)[world["posts"]["plain"].pk].values[-1] is True
    _same(other, _ids(world))
    _same(other, _ids(world), followed=True)


def test_a_block_made_in_a_redis_blip_holds_once_redis_answers(user, world):
    """A block while this process is skipping Redis (an error seconds ago) can't delete its
    stamps then; they go before the next stamp read, so the cached graph isn't trusted."""
    from config.core import redis as redis_module
    from config.core.redis import degraded

    _warm(user, world)
    try:
        raise ConnectionError("blip")
    except ConnectionError:
        degraded("test")
    block_create(blocker=user, blocked=world["stranger"])
    redis_module._last_degraded = float("-inf")
    assert world["posts"]["stranger"].pk not in _by_id(_latest_same(user))

"""feed.hydrate, the one-statement feed page, against the ORM and serializer it stands in for:
the same visible posts (`posts_visible_to`, `posts_following`) and the same JSON (`PostOut`)."""

from __future__ import annotations

import json

import pytest
from django.db import connection
from django.test import override_settings
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.test import APIRequestFactory, force_authenticate

from accounts.services import block_create, follow_create
from cameos.models import Audience
from feed import services
from feed.hydrate import posts_out, posts_page
from feed.models import Post, PostState
from feed.selectors import annotate_posts, posts_following, posts_visible_to
from feed.serializers import PostOut

pytestmark = pytest.mark.django_db


def _request(user, **extra):
    raw = APIRequestFactory().get("/api/v1/feed", **extra)
    force_authenticate(raw, user=user)
    request = Request(raw)
    request.user = user
    return request


@pytest.fixture
def world(user, make_user, make_post, active_cameo):
    """Posts of every shape: plain, a remix, one with a cameo, one liked and commented by the
    viewer, an author with an avatar, and the invisible kinds (removed, taken down, a blocked
    author either way, a deactivated author)."""
    friend = make_user(username="friend", display_name="Friend ✨")
    friend.avatar_small = "avatars/friend-small.webp"
    friend.save(update_fields=["avatar_small"])
    follow_create(follower=user, followee=friend)
    cameo = active_cameo(friend, audience=Audience.EVERYONE, handle="friendcam")
    plain = make_post(friend, caption="plain <b>&</b> \u202e")
    remix = make_post(make_user(username="remixer"), remix_of=plain)
    with_cameo = make_post(friend, cameos=[cameo], caption="with cameo")
    services.like_set(user=user, post=with_cameo, liked=True)
    services.comment_create(user=user, post=with_cameo, body="nice")
    removed = make_post(friend)
    Post.objects.filter(pk=removed.pk).update(state=PostState.REMOVED)
    taken = make_post(friend)
    Post.objects.filter(pk=taken.pk).update(state=PostState.TAKEN_DOWN)
    blocker, blocked = make_user(username="blocker"), make_user(username="blockee")
    make_post(blocker)
    make_post(blocked)
    block_create(blocker=blocker, blocked=user)
    block_create(blocker=user, blocked=blocked)
    gone = make_user(username="gone")
    make_post(gone)
    gone.is_active = False
    gone.save(update_fields=["is_active"])
    return {"plain": plain, "remix": remix, "with_cameo": with_cameo}


def test_visible_posts_are_the_selectors_posts(user, world):
    expected = list(
        posts_visible_to(user).order_by("-created_at", "-id").values_list("pk", flat=True)
    )
    got = [r.id for r in posts_page(viewer_id=user.pk, limit=100)]
    assert got == expected and len(got) == 3
    following = list(
        posts_following(user=user).order_by("-created_at", "-id").values_list("pk", flat=True)
    )
    assert [r.id for r in posts_page(viewer_id=user.pk, limit=100, followed_by=user.pk)] == (
        following
    )
    assert len(following) == 2  # the friend's live posts; the remixer is not followed
    # By ids: only the visible ones, in the order asked, whatever else is named.
    everything = list(Post.objects.values_list("pk", flat=True))
    asked = list(reversed(everything))
    got = [r.id for r in posts_page(viewer_id=user.pk, ids=asked)]
    assert got == [pk for pk in asked if pk in set(expected)]
    # Keyset: strictly older than the cursor.
    first = posts_page(viewer_id=user.pk, limit=1)
    rest = posts_page(viewer_id=user.pk, limit=10, before=(first[0].created_at, first[0].id))
    assert [first[0].id] + [r.id for r in rest] == expected


def _both_ways(user, request) -> tuple[list, list]:
    """The viewer's visible posts as feed.hydrate writes them and as PostOut renders them."""
    posts = list(posts_visible_to(user).order_by("-created_at", "-id"))
    annotate_posts(posts, viewer=user)
    expected = json.loads(
        JSONRenderer().render(PostOut(posts, many=True, context={"request": request}).data)
    )
    got = json.loads(
        json.dumps(posts_out(posts_page(viewer_id=user.pk, limit=100), request=request))
    )
    return got, expected


@pytest.mark.parametrize("forwarded", [{}, {"HTTP_X_FORWARDED_PROTO": "https"}])
def test_post_json_is_exactly_the_serializers(user, world, forwarded, settings):
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    got, expected = _both_ways(user, _request(user, **forwarded))
    assert got == expected
    by_id = {p["id"]: p for p in got}
    liked = by_id[str(world["with_cameo"].pk)]
    assert (liked["liked_by_me"], liked["like_count"], liked["comment_count"]) == (True, 1, 1)
    assert liked["cameos"] == [{"id": liked["cameos"][0]["id"], "handle": "friendcam"}]
    assert by_id[str(world["remix"].pk)]["remix_of"] == str(world["plain"].pk)


@override_settings(TIME_ZONE="Europe/Paris")
def test_post_json_matches_in_another_time_zone(user, world):
    got, expected = _both_ways(user, _request(user))
    assert got == expected


def test_a_page_is_one_statement(user, world, django_assert_num_queries):
    with django_assert_num_queries(1):
        rows = posts_page(viewer_id=user.pk, limit=100)
    # Cameo handles: one more, only because a post on the page shows a cameo.
    with django_assert_num_queries(1):
        posts_out(rows, request=None)
    plain = [r for r in rows if not r.cameo_ids]
    with django_assert_num_queries(0):
        posts_out(plain, request=None)


def test_the_encoded_page_is_byte_for_byte_what_drf_renders(user, world, make_user, make_post):
    """Feed pages splice each post's cached JSON into the body (feed.hydrate.posts_json,
    feed.feeds.feed_response); the bytes must be the ones DRF's renderer writes."""
    from feed.feeds import PostItem, feed_response, post_items
    from feed.hydrate import RawJSON, json_bytes

    make_post(make_user(username="odd"), caption='line\u2028sep\u2029 "quoted" \\ é 😀')
    request = _request(user)
    rows = posts_page(viewer_id=user.pk, limit=100)
    items = post_items(rows, ["latest"] * len(rows), request=request)
    card = {"kind": "create_prompt", "prompt": {"type": "remix_this", "text": "Remix «this»"}}
    page = {"results": [*items, card], "next": "http://testserver/api/v1/feed?cursor=a%2Bb"}
    plain = {
        "results": [
            {**i, "post": json.loads(i["post"])} if isinstance(i.get("post"), RawJSON) else i
            for i in page["results"]
        ],
        "next": page["next"],
    }
    assert json_bytes(page) == JSONRenderer().render(plain)
    # The response writes post items by concatenation (feed.feeds._item_json): same bytes.
    assert feed_response(page["results"], page["next"]).content == JSONRenderer().render(plain)
    # An item whose strings JSON must escape takes the general writer and still matches.
    odd = PostItem({**items[0], "reason": 'odd "reason" \u2028'})
    odd_plain = {**plain["results"][0], "reason": odd["reason"]}
    assert feed_response([odd], None).content == JSONRenderer().render(
        {"results": [odd_plain], "next": None}
    )
    assert b"\\u2028" in json_bytes(page) and "\u2028".encode() not in json_bytes(page)
    assert plain["results"][:-1] == [
        {**i, "post": p} for i, p in zip(items, posts_out(rows, request=request), strict=True)
    ]


def test_a_cached_post_changes_with_its_counts_and_the_viewers_like(user, other, world):
    from feed.hydrate import posts_json

    request = _request(user)
    post = world["plain"]

    def shown():
        (row,) = posts_page(viewer_id=user.pk, ids=[post.pk])
        return json.loads(posts_json([row], request=request)[0])

    before = shown()
    assert shown() == before  # the same key: served from the cache
    services.like_set(user=other, post=post, liked=True)
    assert (shown()["like_count"], shown()["liked_by_me"]) == (before["like_count"] + 1, False)
    services.like_set(user=user, post=post, liked=True)
    assert (shown()["like_count"], shown()["liked_by_me"]) == (before["like_count"] + 2, True)
    user_view = shown()
    other_request = _request(other)
    (row,) = posts_page(viewer_id=other.pk, ids=[post.pk])
    theirs = json.loads(posts_json([row], request=other_request)[0])
    assert theirs["liked_by_me"] is True and theirs["like_count"] == user_view["like_count"]
    post.author.display_name = "Renamed"
    post.author.save(update_fields=["display_name"])
    assert shown()["author"]["display_name"] == "Renamed"


def test_a_video_owned_by_someone_else_still_shows_its_owner(user, make_user, make_post):
    """post_publish only publishes own drafts, so feed.hydrate takes the owner from the author;
    rows made some other way still show the real owner (one more query, only then)."""
    from generation.models import Video

    post = make_post(make_user(username="author"))
    stranger = make_user(username="stranger", display_name="Str")
    Video.objects.filter(pk=post.video_id).update(owner=stranger)
    request = _request(user)
    posts = list(posts_visible_to(user))
    annotate_posts(posts, viewer=user)
    expected = json.loads(
        JSONRenderer().render(PostOut(posts, many=True, context={"request": request}).data)
    )
    from feed.hydrate import posts_json

    rows = posts_page(viewer_id=user.pk, limit=10)
    assert json.loads(json.dumps(posts_out(rows, request=request))) == expected
    assert [json.loads(b) for b in posts_json(rows, request=request)] == expected
    assert expected[0]["video"]["owner"]["username"] == "stranger"


def test_a_newest_first_page_is_planned_once_per_connection(user, world, make_user):
    """A page's statement is prepared (config.core.sql) and, with its limit written in, one
    generic plan serves every viewer and cursor. With the limit bound as a parameter,
    PostgreSQL planned every execution again at 200k posts (its generic plan for an unknown
    LIMIT sorts the whole table), which cost twice the execution (docs/bench-feed.md). On these
    few rows it would pick the generic plan either way: what fails on that code here is the
    bound limit at the statement's end."""
    viewers = [user, *(make_user(username=f"v{i}") for i in range(3))]
    first = posts_page(viewer_id=user.pk, limit=3)
    for i in range(12):
        viewer = viewers[i % len(viewers)]
        posts_page(viewer_id=viewer.pk, limit=3)
        posts_page(viewer_id=viewer.pk, limit=3, before=(first[0].created_at, first[0].id))
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT statement, generic_plans, custom_plans FROM pg_prepared_statements "
            "WHERE statement LIKE %s",
            ["%FROM feed_post p%ORDER BY p.created_at DESC%"],
        )
        plans = cursor.fetchall()
    # First pages and later pages: one statement each, for every viewer and cursor.
    assert len(plans) == 2
    runs = {False: 13, True: 12}  # first pages (one more, above), later pages
    for statement, generic, custom in plans:
        assert statement.endswith("LIMIT 3")
        # PostgreSQL tries five custom plans, then settles on the generic one for good.
        assert (custom, generic) == (5, runs["<" in statement] - 5), statement[-80:]


@pytest.mark.parametrize("limit", [0, -1, 1001, "3", 2.0, True, None])
def test_a_page_limit_is_a_checked_int(user, limit):
    with pytest.raises(ValueError):
        posts_page(viewer_id=user.pk, limit=limit)

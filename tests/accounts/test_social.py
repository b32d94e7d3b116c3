import pytest

from accounts.models import Block, Follow, Notification
from tests.helpers import assert_error

pytestmark = pytest.mark.django_db


def profile(client, username):
    return client.get(f"/api/v1/users/{username}")


def test_follow_is_idempotent_and_counts(api, client_of, user, other):
    assert api.post("/api/v1/users/bob/follow").status_code == 204
    assert api.post("/api/v1/users/BOB/follow").status_code == 204
    assert Follow.objects.filter(follower=user, followee=other).count() == 1
    body = profile(api, "bob").json()
    assert (body["followers_count"], body["following_count"]) == (1, 0)
    assert body["is_following"] is True and body["is_mutual"] is False
    client_of(other).post("/api/v1/users/alice/follow")
    assert profile(api, "bob").json()["is_mutual"] is True
    assert api.delete("/api/v1/users/bob/follow").status_code == 204
    assert api.delete("/api/v1/users/bob/follow").status_code == 204
    assert not Follow.objects.filter(follower=user, followee=other).exists()


def test_follow_notifies_once(api, other):
    api.post("/api/v1/users/bob/follow")
    api.post("/api/v1/users/bob/follow")
    assert Notification.objects.filter(recipient=other, kind="follow").count() == 1


def test_follow_self_and_unknown(api):
    assert_error(api.post("/api/v1/users/alice/follow"), 400, "cannot_follow_self")
    assert_error(api.post("/api/v1/users/nobody/follow"), 404, "not_found")
    assert Follow.objects.count() == 0


def test_block_hides_both_ways_and_removes_follows(api, client_of, user, other):
    bob = client_of(other)
    api.post("/api/v1/users/bob/follow")
    bob.post("/api/v1/users/alice/follow")
    assert api.post("/api/v1/users/bob/block").status_code == 204
    assert Follow.objects.count() == 0
    assert_error(profile(bob, "alice"), 404, "not_found")
    assert_error(profile(api, "bob"), 404, "not_found")
    assert_error(bob.post("/api/v1/users/alice/follow"), 404, "not_found")
    assert Follow.objects.count() == 0
    assert_error(bob.get("/api/v1/users/alice/followers"), 404, "not_found")
    # Unblock restores visibility, not the follows.
    assert api.delete("/api/v1/users/bob/block").status_code == 204
    assert profile(bob, "alice").status_code == 200
    assert Follow.objects.count() == 0


def test_blocked_users_vanish_from_lists_and_notifications(api, client_of, make_user, user, other):
    carol = make_user(username="carol")
    client_of(other).post("/api/v1/users/alice/follow")
    client_of(carol).post("/api/v1/users/alice/follow")
    assert {
        r["user"]["username"] for r in api.get("/api/v1/users/alice/followers").json()["results"]
    } == {"bob", "carol"}
    Block.objects.create(blocker=user, blocked=other)
    rows = api.get("/api/v1/users/alice/followers").json()["results"]
    assert [r["user"]["username"] for r in rows] == ["carol"]
    kinds = [
        (n["kind"], n["actor"]["username"])
        for n in api.get("/api/v1/notifications").json()["results"]
    ]
    assert kinds == [("follow", "carol")]


def test_block_self(api):
    assert_error(api.post("/api/v1/users/alice/block"), 400, "cannot_block_self")
    assert Block.objects.count() == 0


def test_followers_cursor_pages_never_repeat_or_skip(
    api, client_of, make_user, django_assert_max_num_queries
):
    fans = [make_user() for _ in range(25)]
    for fan in fans:
        client_of(fan).post("/api/v1/users/alice/follow")
    seen, url, pages = [], "/api/v1/users/alice/followers?limit=10", 0
    while url:
        with django_assert_max_num_queries(8):
            body = api.get(url).json()
        seen += [row["user"]["username"] for row in body["results"]]
        url, pages = body["next"], pages + 1
        # A new follower arriving mid-scroll must not shift later pages.
        if pages == 1:
            client_of(make_user(username="latecomer")).post("/api/v1/users/alice/follow")
    assert pages == 3
    assert sorted(seen) == sorted(f.username for f in fans)
    assert len(seen) == len(set(seen))


def test_following_list(api, make_user):
    for name in ("x_one", "x_two"):
        make_user(username=name)
        api.post(f"/api/v1/users/{name}/follow")
    rows = api.get("/api/v1/users/alice/following").json()["results"]
    assert [r["user"]["username"] for r in rows] == ["x_two", "x_one"]


@pytest.mark.parametrize(
    "query,field", [("cursor=%%%", "cursor"), ("limit=0", "limit"), ("limit=abc", "limit")]
)
def test_bad_pagination_params(api, query, field):
    assert_error(api.get(f"/api/v1/users/alice/followers?{query}"), 400, "invalid", field)


def test_limit_is_capped(api, client_of, make_user):
    for _ in range(3):
        client_of(make_user()).post("/api/v1/users/alice/follow")
    body = api.get("/api/v1/users/alice/followers?limit=1000").json()
    assert len(body["results"]) == 3


def test_notifications_mark_read(api, client_of, make_user, user, other):
    client_of(other).post("/api/v1/users/alice/follow")
    carol = make_user(username="carol")
    client_of(carol).post("/api/v1/users/alice/follow")
    client_of(user).post("/api/v1/users/carol/follow")  # carol's notification, not alice's
    items = api.get("/api/v1/notifications").json()["results"]
    assert [n["read"] for n in items] == [False, False]
    response = api.post("/api/v1/notifications/read", {"ids": [items[0]["id"]]}, format="json")
    assert response.json() == {"marked": 1}
    assert api.post("/api/v1/notifications/read", {}, format="json").json() == {"marked": 1}
    assert Notification.objects.filter(recipient=carol, read_at__isnull=True).count() == 1


def test_cannot_mark_someone_elses_notifications(api, client_of, make_user, other):
    client_of(make_user(username="carol")).post("/api/v1/users/bob/follow")
    theirs = Notification.objects.get(recipient=other)
    assert api.post(
        "/api/v1/notifications/read", {"ids": [str(theirs.pk)]}, format="json"
    ).json() == {"marked": 0}
    theirs.refresh_from_db()
    assert theirs.read_at is None


def test_blocked_user_ids_answers_both_ways_in_one_statement(make_user):
    """Everyone on the other side of a block, whichever side blocked (one compiled statement,
    accounts.selectors); an unblock takes effect on the next call."""
    from django.contrib.auth.models import AnonymousUser
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from accounts.selectors import blocked_user_ids
    from accounts.services import block_create, block_delete

    alice, bob, carol, dave = (make_user(username=n) for n in ("alice", "bob", "carol", "dave"))
    assert blocked_user_ids(alice) == set()
    block_create(blocker=alice, blocked=bob)
    block_create(blocker=carol, blocked=alice)
    block_create(blocker=bob, blocked=dave)
    with CaptureQueriesContext(connection) as queries:
        assert blocked_user_ids(alice) == {bob.pk, carol.pk}
    assert len(queries) == 1
    assert blocked_user_ids(bob) == {alice.pk, dave.pk}
    assert blocked_user_ids(carol) == {alice.pk}
    assert blocked_user_ids(AnonymousUser()) == set()
    block_delete(blocker=alice, blocked=bob)
    assert blocked_user_ids(alice) == {carol.pk}
    assert blocked_user_ids(bob) == {dave.pk}

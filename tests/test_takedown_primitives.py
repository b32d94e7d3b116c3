"""Moderation's primitives below moderation/ (issue #30): reversible takedowns of videos, posts
and comments through the existing removal paths, and account suspension.

A taken-down post or video is gone from everything a removed one is gone from (every feed
kind, /posts/{id}, remixes, lineage, tree, /videos/{id} and its content, signed URLs too), its
files stay on disk, and a restore brings back exactly what was there, counts included.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.files.storage import default_storage
from django.utils import timezone

from accounts.models import User
from accounts.services import follow_create, user_delete, user_suspend, user_unsuspend
from cameos.models import Audience
from cameos.services import cameo_revoke
from config.core.errors import Conflict, Invalid
from feed.models import Comment, Post, PostState
from feed.selectors import post_counts
from feed.services import (
    comment_create,
    comment_restore,
    comment_takedown,
    post_restore,
    post_takedown,
)
from generation.models import Generation, Video, VideoState
from generation.services.videos import video_remove, video_restore, video_takedown
from tests.conftest import client_for
from tests.helpers import assert_error

pytestmark = pytest.mark.django_db

API = "/api/v1"


def _scroll(client, url: str) -> list[dict]:
    items = []
    while url:
        response = client.get(url)
        assert response.status_code == 200, response.content[:500]
        body = response.json()
        items += body["results"]
        url = body["next"]
    return items


def feed_ids(client, kind: str, limit: int = 2) -> list[str]:
    items = _scroll(client, f"{API}/feed?kind={kind}&limit={limit}")
    return [item["post"]["id"] for item in items if item["kind"] == "post"]


def list_ids(client, url: str) -> list[str]:
    return [row["id"] for row in _scroll(client, url)]


def tree_ids(client, post) -> list[str]:
    response = client.get(f"{API}/posts/{post.pk}/tree")
    assert response.status_code == 200, response.content[:500]

    def walk(node):
        for child in node["children"]:
            yield child["id"], child.get("state")
            yield from walk(child)

    return list(walk(response.json()["root"]))


def counts(post) -> dict:
    c = post_counts([post.pk]).get(post.pk, {})
    return {k: c.get(k) or 0 for k in ("likes", "comments", "remixes")}


def video_files(video) -> list[str]:
    video.refresh_from_db()
    return [video.content, video.poster, video.preview]


@pytest.fixture
def world(make_user, make_post):
    """alice posts `a` and `c`; bob remixes `a` as `b`; carol follows both and likes and
    comments on `b`."""
    alice, bob, carol = (make_user(username=n) for n in ("alice", "bob", "carol"))
    for followee in (alice, bob):
        follow_create(follower=carol, followee=followee)
    a = make_post(alice, prompt="a")
    c = make_post(alice, prompt="c")
    b = make_post(bob, remix_of=a, prompt="b")
    viewer = client_for(carol)
    assert viewer.post(f"{API}/posts/{b.pk}/like").status_code == 200
    response = viewer.post(f"{API}/posts/{b.pk}/comments", {"body": "nice"}, format="json")
    assert response.status_code == 201
    return {"alice": alice, "bob": bob, "carol": carol, "a": a, "b": b, "c": c, "viewer": viewer}


def snapshot_of(w) -> dict:
    """Everything carol, bob and an anonymous holder of a signed URL can see about `b`."""
    viewer, a, b = w["viewer"], w["a"], w["b"]
    owner = client_for(w["bob"])
    return {
        "latest": feed_ids(viewer, "latest"),
        "following": feed_ids(viewer, "following"),
        "for_you": sorted(feed_ids(viewer, "for_you")),
        "bob_posts": list_ids(viewer, f"{API}/users/bob/posts"),
        "bob_posts_own": list_ids(owner, f"{API}/users/bob/posts"),
        "a_remixes": list_ids(viewer, f"{API}/posts/{a.pk}/remixes"),
        "a_tree": tree_ids(viewer, a),
        "post_b": viewer.get(f"{API}/posts/{b.pk}").status_code,
        "post_b_owner": owner.get(f"{API}/posts/{b.pk}").status_code,
        "b_lineage": viewer.get(f"{API}/posts/{b.pk}/lineage").status_code,
        "b_tree": viewer.get(f"{API}/posts/{b.pk}/tree").status_code,
        "b_remixes": viewer.get(f"{API}/posts/{b.pk}/remixes").status_code,
        "b_comments": viewer.get(f"{API}/posts/{b.pk}/comments").status_code,
        "video": viewer.get(f"{API}/videos/{b.video_id}").status_code,
        "video_owner": owner.get(f"{API}/videos/{b.video_id}").status_code,
        "content": viewer.get(f"{API}/videos/{b.video_id}/content").status_code,
        "content_owner": owner.get(f"{API}/videos/{b.video_id}/content?variant=poster").status_code,
        "counts_a": counts(a),
        "counts_b": counts(b),
    }


def test_post_takedown_hides_everywhere_keeps_files_and_restore_brings_all_back(world, anon):
    a, b, c, viewer = world["a"], world["b"], world["c"], world["viewer"]
    before = snapshot_of(world)
    assert before["latest"] == [str(b.pk), str(c.pk), str(a.pk)]
    assert before["following"] == [str(b.pk), str(c.pk), str(a.pk)]
    assert before["for_you"] == sorted([str(a.pk), str(b.pk), str(c.pk)])
    assert before["bob_posts"] == before["bob_posts_own"] == [str(b.pk)]
    assert before["a_remixes"] == [str(b.pk)]
    assert before["a_tree"] == [(str(b.pk), "live")]
    assert before["counts_a"] == {"likes": 0, "comments": 0, "remixes": 1}
    assert before["counts_b"] == {"likes": 1, "comments": 1, "remixes": 0}
    signed = viewer.get(f"{API}/posts/{b.pk}").json()["video"]["content_url"]
    assert anon.get(signed).status_code == 200
    files = video_files(b.video)

    post_takedown(post=b, reason="harassment")

    b.refresh_from_db()
    b.video.refresh_from_db()
    assert b.state == PostState.TAKEN_DOWN and b.takedown_reason == "harassment"
    assert b.video.state == VideoState.TAKEN_DOWN
    assert b.video.state_before_takedown == VideoState.POSTED
    after = snapshot_of(world)
    assert after["latest"] == after["following"] == [str(c.pk), str(a.pk)]
    assert after["for_you"] == sorted([str(a.pk), str(c.pk)])
    assert after["bob_posts"] == after["bob_posts_own"] == []
    assert after["a_remixes"] == [] and after["a_tree"] == []
    for key in (
        "post_b",
        "post_b_owner",
        "b_lineage",
        "b_tree",
        "b_remixes",
        "b_comments",
        "video",
        "video_owner",
        "content",
        "content_owner",
    ):
        assert after[key] == 404, key
    assert_error(viewer.get(f"{API}/posts/{b.pk}"), 404, "not_found")
    assert_error(viewer.get(f"{API}/videos/{b.video_id}/content"), 404, "not_found")
    assert_error(anon.get(signed), 404, "not_found")
    assert_error(viewer.post(f"{API}/posts/{b.pk}/like"), 404, "not_found")
    assert after["counts_a"] == {"likes": 0, "comments": 0, "remixes": 0}
    assert after["counts_b"] == before["counts_b"]
    assert all(default_storage.exists(name) for name in files)
    # The owner still finds the video in their generations, marked taken down.
    generations = client_for(world["bob"]).get(f"{API}/generations").json()["results"]
    assert [g["video"]["state"] for g in generations] == ["taken_down"]

    post_restore(post=b)

    b.refresh_from_db()
    assert b.state == PostState.LIVE and b.takedown_reason == "" and b.taken_down_at is None
    assert Video.objects.get(pk=b.video_id).state == VideoState.POSTED
    restored = snapshot_of(world)
    assert restored == before
    assert anon.get(signed).status_code == 200
    assert all(default_storage.exists(name) for name in files)


def _session_rest(viewer, first: dict) -> list[str]:
    rest = _scroll(viewer, first["next"]) if first["next"] else []
    return [item["post"]["id"] for item in rest if item["kind"] == "post"]


def test_an_open_for_you_session_rechecks_each_page_for_takedowns_and_restores(world):
    viewer = world["viewer"]
    everyone = {str(world[k].pk) for k in "abc"}
    first = viewer.get(f"{API}/feed?kind=for_you&limit=1").json()
    shown = first["results"][0]["post"]["id"]
    target = Post.objects.get(pk=sorted(everyone - {shown})[0])
    post_takedown(post=target, reason="spam")
    assert set(_session_rest(viewer, first)) == everyone - {shown, str(target.pk)}

    # A session built while it is down never had it; restored, the next session has it.
    first = viewer.get(f"{API}/feed?kind=for_you&limit=1").json()
    post_restore(post=target)
    assert {first["results"][0]["post"]["id"], *_session_rest(viewer, first)} == everyone - {
        str(target.pk)
    }
    first = viewer.get(f"{API}/feed?kind=for_you&limit=1").json()
    shown = first["results"][0]["post"]["id"]
    # Taken down and restored within one session: the snapshot still has its place.
    target = Post.objects.get(pk=sorted(everyone - {shown})[0])
    post_takedown(post=target, reason="spam")
    post_restore(post=target)
    rest = _session_rest(viewer, first)
    assert {shown, *rest} == everyone and len(rest) == 2


def test_root_takedown_leaves_its_remix_with_a_placeholder_and_refuses_remixing(world):
    viewer, a, b = world["viewer"], world["a"], world["b"]
    lineage = viewer.get(f"{API}/posts/{b.pk}/lineage").json()["results"]
    assert [(row["id"], row["state"]) for row in lineage] == [(str(a.pk), "live")]

    post_takedown(post=a, reason="ip_infringement")

    lineage = viewer.get(f"{API}/posts/{b.pk}/lineage").json()["results"]
    assert lineage == [{"id": str(a.pk), "state": "unavailable", "depth": 0}]
    assert_error(viewer.get(f"{API}/posts/{a.pk}/tree"), 404, "not_found")
    assert_error(viewer.get(f"{API}/posts/{a.pk}/remixes"), 404, "not_found")
    assert viewer.get(f"{API}/posts/{b.pk}").status_code == 200
    jobs = Generation.objects.count()
    assert_error(
        viewer.post(f"{API}/posts/{a.pk}/remix", {"prompt": "again"}, format="json"),
        404,
        "not_found",
    )
    assert_error(
        viewer.post(f"{API}/generations", {"prompt": "x", "remix_of": str(a.pk)}, format="json"),
        404,
        "not_found",
    )
    assert Generation.objects.count() == jobs

    post_restore(post=a)
    lineage = viewer.get(f"{API}/posts/{b.pk}/lineage").json()["results"]
    assert [(row["id"], row["state"]) for row in lineage] == [(str(a.pk), "live")]
    assert (
        viewer.post(f"{API}/posts/{a.pk}/remix", {"prompt": "again"}, format="json").status_code
        == 202
    )


def test_takedown_and_restore_twice_are_no_ops(world):
    a, b = world["a"], world["b"]
    post_takedown(post=b, reason="first")
    post_takedown(post=b, reason="second")
    video_takedown(video=Video.objects.get(pk=b.video_id), reason="third")
    b.refresh_from_db()
    assert b.takedown_reason == "first"
    assert Video.objects.get(pk=b.video_id).takedown_reason == "first"
    assert counts(a)["remixes"] == 0
    post_restore(post=b)
    post_restore(post=b)
    video_restore(video=Video.objects.get(pk=b.video_id))
    assert counts(a)["remixes"] == 1
    b.refresh_from_db()
    assert b.state == PostState.LIVE
    assert Video.objects.get(pk=b.video_id).state == VideoState.POSTED


def test_video_subject_and_post_subject_reach_each_other(world):
    """Moderation may act on either subject: a video takedown takes its post down (the
    `video.taken_down` hook), a post restore brings the video back, and the other way."""
    viewer, b = world["viewer"], world["b"]
    video = Video.objects.get(pk=b.video_id)
    video_takedown(video=video, reason="sexual_deepfake")
    assert Post.objects.get(pk=b.pk).state == PostState.TAKEN_DOWN
    assert counts(world["a"])["remixes"] == 0
    assert viewer.get(f"{API}/posts/{b.pk}").status_code == 404
    post_restore(post=b)
    assert Video.objects.get(pk=b.video_id).state == VideoState.POSTED
    assert viewer.get(f"{API}/posts/{b.pk}").status_code == 200

    post_takedown(post=b, reason="spam")
    video_restore(video=Video.objects.get(pk=b.video_id))
    assert Post.objects.get(pk=b.pk).state == PostState.LIVE
    assert counts(world["a"])["remixes"] == 1
    assert viewer.get(f"{API}/posts/{b.pk}").status_code == 200


def test_a_taken_down_draft_is_hidden_unpublishable_and_comes_back_a_draft(
    make_user, make_video_row, active_cameo
):
    owner, cameo_owner = make_user(username="dana"), make_user(username="erin")
    cameo = active_cameo(cameo_owner, handle="erins.clock", audience=Audience.EVERYONE)
    draft = make_video_row(owner, cameos=[cameo])
    me, them = client_for(owner), client_for(cameo_owner)
    assert list_ids(me, f"{API}/drafts") == [str(draft.pk)]
    files = video_files(draft)

    video_takedown(video=draft, reason="likeness_misuse")

    assert_error(me.get(f"{API}/videos/{draft.pk}"), 404, "not_found")
    assert_error(them.get(f"{API}/videos/{draft.pk}"), 404, "not_found")
    assert_error(me.get(f"{API}/videos/{draft.pk}/content"), 404, "not_found")
    assert list_ids(me, f"{API}/drafts") == []
    generations = me.get(f"{API}/generations").json()["results"]
    assert [g["video"]["state"] for g in generations] == ["taken_down"]
    # The cameo owner still sees it among their appearances, so they can remove it for good.
    appearances = them.get(f"{API}/cameos/{cameo.pk}/appearances").json()["results"]
    assert [(r["video"]["id"], r["video"]["state"]) for r in appearances] == [
        (str(draft.pk), "taken_down")
    ]
    assert_error(
        me.post(f"{API}/posts", {"video_id": str(draft.pk)}, format="json"), 404, "not_found"
    )
    assert not Post.objects.filter(video=draft).exists()
    assert all(default_storage.exists(name) for name in files)

    video_restore(video=draft)

    assert Video.objects.get(pk=draft.pk).state == VideoState.DRAFT
    assert list_ids(me, f"{API}/drafts") == [str(draft.pk)]
    assert me.get(f"{API}/videos/{draft.pk}/content").status_code == 200
    assert me.post(f"{API}/posts", {"video_id": str(draft.pk)}, format="json").status_code == 201


def test_consent_withdrawal_removes_a_taken_down_video_for_good(
    make_user, make_post, active_cameo, django_capture_on_commit_callbacks
):
    author = make_user(username="fay")
    cameo = active_cameo(author, handle="fays.lamp")
    parent = make_post(author, prompt="parent")
    post = make_post(author, cameos=[cameo], remix_of=parent)
    files = video_files(post.video)
    post_takedown(post=post, reason="violence")
    assert counts(parent)["remixes"] == 0

    with django_capture_on_commit_callbacks(execute=True):
        cameo_revoke(cameo=cameo, actor=author)

    post.refresh_from_db()
    assert post.state == PostState.REMOVED
    assert Video.objects.get(pk=post.video_id).state == VideoState.REMOVED
    assert [name for name in files if default_storage.exists(name)] == []
    assert counts(parent)["remixes"] == 0  # uncounted once, at the takedown
    with pytest.raises(Conflict) as refused:
        post_restore(post=post)
    assert refused.value.code == "invalid_transition"
    with pytest.raises(Conflict):
        video_restore(video=Video.objects.get(pk=post.video_id))
    with pytest.raises(Conflict):
        post_takedown(post=post, reason="again")
    assert Post.objects.get(pk=post.pk).state == PostState.REMOVED


def test_a_cameo_owner_removes_a_taken_down_video_for_good(
    make_user, make_post, active_cameo, django_capture_on_commit_callbacks
):
    author, cameo_owner = make_user(username="hal"), make_user(username="ida")
    cameo = active_cameo(cameo_owner, handle="idas.kettle", audience=Audience.EVERYONE)
    post = make_post(author, cameos=[cameo])
    files = video_files(post.video)
    post_takedown(post=post, reason="likeness_misuse")
    them = client_for(cameo_owner)
    with django_capture_on_commit_callbacks(execute=True):
        response = them.delete(f"{API}/cameos/{cameo.pk}/appearances/{post.video_id}")
    assert response.status_code == 204
    assert Post.objects.get(pk=post.pk).state == PostState.REMOVED
    assert Video.objects.get(pk=post.video_id).state == VideoState.REMOVED
    assert [name for name in files if default_storage.exists(name)] == []
    assert them.get(f"{API}/cameos/{cameo.pk}/appearances").json()["results"] == []
    with pytest.raises(Conflict):
        post_restore(post=post)


def test_a_removed_video_cannot_be_taken_down(make_user, make_video_row):
    video = make_video_row(make_user(username="gus"))
    video_remove(video=video, reason="deleted")
    with pytest.raises(Conflict) as refused:
        video_takedown(video=video, reason="late")
    assert refused.value.code == "invalid_transition"
    assert Video.objects.get(pk=video.pk).state == VideoState.REMOVED


def test_account_deletion_keeps_counts_exact_across_takedowns(world):
    a, b, carol = world["a"], world["b"], world["carol"]
    comment = Comment.objects.get(post=b)
    other = comment_create(user=world["alice"], post=a, body="mine")
    hidden = comment_create(user=carol, post=a, body="rude")
    comment_takedown(comment=hidden, reason="harassment")
    post_takedown(post=b, reason="spam")
    assert counts(a) == {"likes": 0, "comments": 1, "remixes": 0}
    user_delete(user=world["bob"])  # b goes for good; a's remix count stays exact
    assert counts(a) == {"likes": 0, "comments": 1, "remixes": 0}
    user_delete(user=carol)  # her hidden comment was already uncounted
    assert counts(a) == {"likes": 0, "comments": 1, "remixes": 0}
    assert Comment.objects.filter(pk__in=[comment.pk, hidden.pk]).count() == 0
    assert Comment.objects.filter(pk=other.pk).exists()


def test_comment_takedown_hides_it_from_everyone_and_keeps_the_count_exact(world):
    b, viewer = world["b"], world["viewer"]
    author = client_for(world["carol"])  # carol wrote the fixture's comment
    second = comment_create(user=world["alice"], post=b, body="second")
    first = Comment.objects.exclude(pk=second.pk).get(post=b)
    url = f"{API}/posts/{b.pk}/comments"
    assert sorted(list_ids(viewer, url)) == sorted([str(first.pk), str(second.pk)])
    assert viewer.get(f"{API}/posts/{b.pk}").json()["comment_count"] == 2

    comment_takedown(comment=first, reason="harassment")
    comment_takedown(comment=first, reason="again")

    for client in (viewer, author, client_for(world["bob"]), client_for(world["alice"])):
        assert list_ids(client, url) == [str(second.pk)]
        assert client.get(f"{API}/posts/{b.pk}").json()["comment_count"] == 1
    assert Comment.objects.get(pk=first.pk).hidden_reason == "harassment"

    comment_restore(comment=first)
    comment_restore(comment=first)

    assert sorted(list_ids(viewer, url)) == sorted([str(first.pk), str(second.pk)])
    assert viewer.get(f"{API}/posts/{b.pk}").json()["comment_count"] == 2
    assert Comment.objects.get(pk=first.pk).hidden_at is None


# --- suspension -------------------------------------------------------------------------------


@pytest.fixture
def suspended_world(world, make_video_row, settings):
    settings.RIFF_DAILY_QUOTA = 0  # the suspension answers before the quota would
    carol = world["carol"]
    until = timezone.now() + timedelta(days=3)
    user_suspend(user=carol, until=until)
    return {**world, "until": until, "draft": make_video_row(carol)}


def _writes(w) -> dict:
    client, a, draft = client_for(User.objects.get(pk=w["carol"].pk)), w["a"], w["draft"]
    return {
        "generate": client.post(f"{API}/generations", {"prompt": "a cat"}, format="json"),
        "remix": client.post(f"{API}/posts/{a.pk}/remix", {"prompt": "again"}, format="json"),
        "publish": client.post(f"{API}/posts", {"video_id": str(draft.pk)}, format="json"),
        "comment": client.post(f"{API}/posts/{a.pk}/comments", {"body": "hi"}, format="json"),
    }


def _made(w) -> tuple[int, int, int]:
    carol = w["carol"]
    return (
        Generation.objects.filter(owner=carol).exclude(pk=w["draft"].generation_id).count(),
        Post.objects.filter(author=carol).count(),
        Comment.objects.filter(author=carol, post=w["a"]).count(),
    )


def test_a_suspended_user_may_not_write_and_may_still_read(suspended_world):
    w = suspended_world
    for name, response in _writes(w).items():
        error = assert_error(response, 403, "account_suspended")
        assert w["until"].strftime("%Y-%m-%dT%H:%M") in error["message"], name
    assert _made(w) == (0, 0, 0)
    assert Video.objects.get(pk=w["draft"].pk).state == VideoState.DRAFT
    client = client_for(w["carol"])
    for url in (
        "/feed?kind=latest",
        "/feed?kind=following",
        "/feed?kind=for_you",
        f"/posts/{w['a'].pk}",
        f"/posts/{w['a'].pk}/comments",
        "/generations",
        "/drafts",
        "/me",
    ):
        assert client.get(API + url).status_code == 200, url


def test_an_ended_suspension_lets_the_user_act_again(suspended_world, settings):
    w = suspended_world
    settings.RIFF_DAILY_QUOTA = 10
    User.objects.filter(pk=w["carol"].pk).update(
        suspended_until=timezone.now() - timedelta(seconds=1)
    )
    statuses = {name: r.status_code for name, r in _writes(w).items()}
    assert statuses == {"generate": 202, "remix": 202, "publish": 201, "comment": 201}
    assert _made(w) == (2, 1, 1)


def test_unsuspend_lifts_it_now_and_suspend_wants_a_future_time(suspended_world, settings):
    w = suspended_world
    settings.RIFF_DAILY_QUOTA = 10
    user_unsuspend(user=w["carol"])
    user_unsuspend(user=w["carol"])
    assert User.objects.get(pk=w["carol"].pk).suspended_until is None
    assert _writes(w)["comment"].status_code == 201
    with pytest.raises(Invalid):
        user_suspend(user=w["carol"], until=timezone.now() - timedelta(minutes=1))
    assert User.objects.get(pk=w["carol"].pk).suspended_until is None

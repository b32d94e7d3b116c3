"""config.core.compiled: an ORM query compiled once answers as the ORM does, for any values,
and refuses the queries it can't compile safely (issue #31: a ranking's queries)."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.db.models import Q
from django.utils import timezone

from accounts.models import Block, Follow, User
from config.core.compiled import CompiledQuery
from feed.models import Post, PostState

pytestmark = pytest.mark.django_db


def _recent(since, viewer, blocked):
    return (
        Post.objects.filter(state=PostState.LIVE, created_at__gte=since)
        .exclude(author_id=viewer)
        .exclude(author_id__any=blocked)
        .order_by("-created_at", "-id")
        .values_list("id")
    )


RECENT = CompiledQuery(_recent, since="datetime", viewer="uuid", blocked="uuids")


def test_rows_answer_as_the_orm_does_for_any_values(make_user, make_post):
    alice, bob, carol = (make_user(username=n) for n in ("alice", "bob", "carol"))
    posts = {u.username: [make_post(u), make_post(u)] for u in (alice, bob, carol)}
    Post.objects.filter(pk=posts["carol"][0].pk).update(state=PostState.REMOVED)
    old = posts["bob"][1]
    Post.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=3))
    now = timezone.now()
    cases = [
        (now - timedelta(days=1), alice.pk, []),
        (now - timedelta(days=1), alice.pk, [bob.pk]),
        (now - timedelta(days=7), str(bob.pk), {carol.pk, uuid.uuid4()}),
        (now - timedelta(days=7), uuid.uuid4(), [alice.pk, bob.pk, carol.pk]),
        (now + timedelta(days=1), alice.pk, []),
    ]
    answers = []
    for since, viewer, blocked in cases:
        got = [row[0] for row in RECENT.rows(since=since, viewer=viewer, blocked=blocked)]
        assert got == list(_recent(since, viewer, blocked).values_list("id", flat=True))
        answers.append(got)
    # The cases differ, so the test would notice values bound in the wrong places.
    assert answers[0] == [posts["carol"][1].pk, posts["bob"][0].pk]
    assert answers[1] == [posts["carol"][1].pk]
    assert answers[3] == []
    assert answers[4] == []
    assert len({tuple(a) for a in answers}) == 4


def test_the_build_runs_once_per_process(make_user):
    calls = []

    def build(viewer):
        calls.append(viewer)
        return User.objects.filter(pk=viewer).values_list("username")

    query = CompiledQuery(build, viewer="uuid")
    alice, bob = make_user(username="alice"), make_user(username="bob")
    assert query.rows(viewer=alice.pk) == [("alice",)]
    assert query.rows(viewer=bob.pk) == [("bob",)]
    assert query.rows(viewer=uuid.uuid4()) == []
    assert len(calls) == 1 and calls[0] not in (alice.pk, bob.pk)  # a sentinel, never a value


def test_one_argument_used_several_times_is_bound_everywhere(make_user):
    """The consent rule names the viewer six times; each place gets the value."""
    query = CompiledQuery(
        lambda me: (
            User.objects.filter(
                Q(pk=me) | Q(pk__in=Follow.objects.filter(follower_id=me).values("followee_id"))
            )
            .exclude(pk__in=Block.objects.filter(blocker_id=me).values("blocked_id"))
            .order_by("username")
            .values_list("username")
        ),
        me="uuid",
    )
    alice, bob = make_user(username="alice"), make_user(username="bob")
    Follow.objects.create(follower=alice, followee=bob)
    assert query.rows(me=alice.pk) == [("alice",), ("bob",)]
    assert query.rows(me=bob.pk) == [("bob",)]
    Block.objects.create(blocker=alice, blocked=bob)
    assert query.rows(me=alice.pk) == [("alice",)]


def test_list_arguments_are_bound_as_data(make_user, make_post):
    query = CompiledQuery(
        lambda keys: Post.objects.filter(cameo_ids__has_any_keys=keys).values_list("id"),
        keys="strs",
    )
    alice = make_user()
    post = make_post(alice)
    cameo = str(uuid.uuid4())
    Post.objects.filter(pk=post.pk).update(cameo_ids=[cameo])
    assert query.rows(keys=[cameo]) == [(post.pk,)]
    hostile = ["x' OR '1'='1", '"}', "{a,b}", "\\", cameo.upper()]
    assert query.rows(keys=hostile) == []
    assert query.rows(keys=[]) == []
    with pytest.raises(ValueError):
        RECENT.rows(since=timezone.now(), viewer="not a uuid", blocked=[])
    with pytest.raises(ValueError):
        RECENT.rows(since=timezone.now(), viewer=uuid.uuid4(), blocked=["1; DROP TABLE x"])


def _ignores_since(viewer, since):
    return User.objects.filter(pk=viewer).values_list("id")


def _writes_viewer_in(viewer):
    # A value written into the SQL text instead of bound: the unsafe build under test.
    return User.objects.extra(where=[f"id = '{viewer}'"]).filter(pk=viewer).values_list("id")  # noqa: S610


def test_a_query_it_cant_compile_safely_is_refused():
    ignored = CompiledQuery(_ignores_since, viewer="uuid", since="datetime")
    with pytest.raises(RuntimeError, match="did not compile as parameters"):
        ignored.rows(viewer=uuid.uuid4(), since=timezone.now())
    inlined = CompiledQuery(_writes_viewer_in, viewer="uuid")
    with pytest.raises(RuntimeError, match="written into the SQL text"):
        inlined.rows(viewer=uuid.uuid4())
    with pytest.raises(ValueError, match="unknown argument kinds"):
        CompiledQuery(lambda n: User.objects.filter(pk=n), n="int")
    with pytest.raises(TypeError):
        RECENT.rows(since=timezone.now(), viewer=uuid.uuid4())
    with pytest.raises(ValueError, match="aware"):
        RECENT.rows(since=timezone.now().replace(tzinfo=None), viewer=uuid.uuid4(), blocked=[])

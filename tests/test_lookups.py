"""config.core.lookups: `field__any=[...]` answers as `field__in=[...]` does, with the list sent
as one array parameter (issue #31: ranking's ~1,000-id lists)."""

from __future__ import annotations

import uuid

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.models import Follow, User
from config.core.lookups import uuid_array
from feed.models import Post

pytestmark = pytest.mark.django_db


def test_any_matches_what_in_matches(make_user, make_post):
    alice, bob, carol = make_user(username="alice"), make_user(username="bob"), make_user()
    posts = [make_post(alice), make_post(bob), make_post(carol), make_post(alice)]
    wanted = [posts[0].pk, str(posts[2].pk), uuid.uuid4()]  # UUIDs, text, one that is nobody
    assert set(Post.objects.filter(pk__any=wanted).values_list("pk", flat=True)) == {
        posts[0].pk,
        posts[2].pk,
    }
    assert set(Post.objects.filter(pk__any=wanted)) == set(Post.objects.filter(pk__in=wanted))
    # A foreign key by its column and by the relation; exclude; a set; a generator.
    assert set(Post.objects.filter(author_id__any={alice.pk}).values_list("pk", flat=True)) == {
        posts[0].pk,
        posts[3].pk,
    }
    assert Post.objects.filter(author__any=(u.pk for u in (bob, carol))).count() == 2
    assert set(Post.objects.exclude(author_id__any=[alice.pk, bob.pk])) == {posts[2]}
    Follow.objects.create(follower=alice, followee=bob)
    assert list(Follow.objects.filter(followee_id__any=[bob.pk, carol.pk])) == list(
        Follow.objects.filter(followee_id__in=[bob.pk, carol.pk])
    )
    assert Follow.objects.filter(followee_id__any=[bob.pk, carol.pk]).count() == 1
    # An empty list matches nothing (and still runs).
    with CaptureQueriesContext(connection) as queries:
        assert list(Post.objects.filter(pk__any=[])) == []
    assert len(queries) == 1


def test_any_sends_one_parameter_whatever_the_length(make_user, make_post):
    alice = make_user()
    post = make_post(alice)
    ids = [uuid.uuid4() for _ in range(999)] + [post.pk]
    with CaptureQueriesContext(connection) as queries:
        found = list(Post.objects.filter(pk__any=ids).values_list("pk", flat=True))
    assert found == [post.pk]
    (sql,) = [q["sql"] for q in queries]
    assert "= ANY(" in sql and "::uuid[]" in sql
    assert " IN (" not in sql


def test_any_on_text_quotes_each_value(make_user):
    """Values that mean something inside an array literal or SQL are matched as themselves."""
    odd = ["a,b", 'q"uote', "br{ace}", "back\\slash", "it's", "NULL"]
    users = {name: make_user(username=f"u{i}") for i, name in enumerate(odd)}
    for name, user in users.items():
        User.objects.filter(pk=user.pk).update(display_name=name)
    for name, user in users.items():
        assert list(User.objects.filter(display_name__any=[name]).values_list("pk", flat=True)) == [
            user.pk
        ]
    assert User.objects.filter(display_name__any=odd).count() == len(odd)
    assert not User.objects.filter(display_name__any=["a", "b"]).exists()


def test_any_refuses_what_is_not_a_list_of_values(make_user):
    user = make_user()
    for bad in ("abc", b"abc", 5, None):
        with pytest.raises(TypeError):
            list(User.objects.filter(pk__any=bad))
    with pytest.raises(TypeError):
        list(User.objects.filter(pk__any=User.objects.values("pk")))
    # Text that is not a UUID never reaches the SQL: it fails to parse first.
    for bad in ["}", "x' OR '1'='1", "00000000-0000-0000-0000-00000000000g"]:
        with pytest.raises(ValueError):
            list(Follow.objects.filter(follower_id__any=[user.pk, bad]))


def test_uuid_array_literal():
    a, b = uuid.UUID(int=1), uuid.UUID(int=2)
    assert uuid_array([a, str(b)]) == f"{{{a.hex},{b.hex}}}"
    assert uuid_array([]) == "{}"
    with pytest.raises(ValueError):
        uuid_array(["1,2"])

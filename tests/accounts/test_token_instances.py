"""accounts.tokens builds a request's token and user from their rows without `__init__`: the
instances must be what `from_db` makes, and anything listening to `pre_init`/`post_init` must
still hear them."""

from __future__ import annotations

import pytest
from django.db.models.signals import post_init

from accounts.models import AuthToken, User
from accounts.tokens import (
    _instance,
    _lookup_sql,
    _read,
    hash_token,
    token_authenticate,
    token_issue,
)

pytestmark = pytest.mark.django_db


def _fields(instance) -> dict:
    return {f.attname: getattr(instance, f.attname) for f in type(instance)._meta.concrete_fields}


def test_instances_are_what_from_db_makes(user, django_assert_num_queries):
    from django.utils import timezone

    raw = token_issue(user=user)
    _, token_columns, user_columns = _lookup_sql()
    token_row, user_row = _read(hash_token(raw), timezone.now())
    for model, columns, row in (
        (AuthToken, token_columns, token_row),
        (User, user_columns, user_row),
    ):
        quick, usual = _instance(model, columns, row), model.from_db("default", columns, row)
        assert type(quick) is model
        assert _fields(quick) == _fields(usual) and quick.pk == usual.pk
        assert (quick._state.adding, quick._state.db) == (False, "default")
        assert quick == usual
    token = token_authenticate(raw)
    assert token.user_id == user.pk
    with django_assert_num_queries(0):
        assert token.user.username == user.username  # cached on the token, not read again
    # A change to one request's instance reaches neither the cache nor the next request.
    token.user.display_name = "changed"
    assert token_authenticate(raw).user.display_name == user.display_name


def test_init_signal_listeners_still_hear_the_instances(user):
    heard = []

    def listener(sender, instance, **kwargs):
        heard.append(type(instance).__name__)

    raw = token_issue(user=user)
    post_init.connect(listener, sender=User)
    try:
        token = token_authenticate(raw)
        assert token is not None and token.user.username == user.username
        assert heard == ["User"]
    finally:
        post_init.disconnect(listener, sender=User)
    heard.clear()
    assert token_authenticate(raw) is not None
    assert heard == []

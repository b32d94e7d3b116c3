"""The per-process token cache (accounts.authcache): a cached token costs no PostgreSQL read,
and every change to a token or its user is seen on the next request."""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.utils import timezone
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.test import APIRequestFactory
from rest_framework.views import APIView

from accounts import authcache
from accounts.authentication import BearerTokenAuthentication
from accounts.models import AuthToken, User
from accounts.services import user_update
from accounts.tokens import hash_token, token_authenticate, token_issue, token_revoke
from config.core.redis import command_run, redis_client
from config.core.throttles import UserThrottle
from tests.helpers import assert_error

ME = "/api/v1/me"


def _warm(client) -> None:
    """A first request reads PostgreSQL and fills the cache."""
    assert client.get(ME).status_code == 200


def test_a_cached_token_reads_nothing_from_postgres_and_makes_one_redis_round_trip(
    api, django_assert_num_queries, redis_sends
):
    with django_assert_num_queries(2):  # the token joined to its user; its first touch
        assert api.get(ME).status_code == 200
    redis_sends.clear()
    with django_assert_num_queries(0):
        response = api.get(ME)
    assert response.status_code == 200
    assert response.json()["username"] == api.user.username
    # The stamp check and the user's rate limit share one pipeline.
    assert len(redis_sends) == 1


def test_logout_is_seen_on_the_next_request(api):
    _warm(api)
    assert api.post("/api/v1/auth/logout").status_code == 204
    assert_error(api.get(ME), 401, "not_authenticated")


def test_moderation_deactivating_through_update_is_seen(api, user):
    _warm(api)
    User.objects.filter(pk=user.pk).update(is_active=False)
    assert_error(api.get(ME), 401, "not_authenticated")


def test_a_user_saved_is_seen(api, user):
    _warm(api)
    user.is_active = False
    user.save(update_fields=["is_active"])
    assert_error(api.get(ME), 401, "not_authenticated")


def test_a_profile_edit_through_a_service_or_an_update_is_seen(api, user):
    _warm(api)
    user_update(user=user, data={"display_name": "Saved"})
    assert api.get(ME).json()["display_name"] == "Saved"
    User.objects.filter(pk=user.pk).update(display_name="Updated")
    assert api.get(ME).json()["display_name"] == "Updated"


def test_a_deleted_or_expired_token_is_refused(api, user):
    _warm(api)
    token = AuthToken.objects.get(user=user)
    AuthToken.objects.filter(pk=token.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert_error(api.get(ME), 401, "not_authenticated")

    raw = token_issue(user=user)
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    _warm(api)
    AuthToken.objects.get(key_hash=hash_token(raw)).delete()
    assert_error(api.get(ME), 401, "not_authenticated")


def test_a_token_that_expires_while_cached_is_refused_without_any_write(api, user):
    _warm(api)
    token = AuthToken.objects.get(user=user)
    # Time passes its expiry: in the row (raw SQL, so no stamp is deleted, as with the clock)
    # and in the cached copy. The stamp still matches; the expiry alone must refuse it.
    past = timezone.now() - timedelta(seconds=1)
    with connection.cursor() as cur:
        cur.execute("UPDATE accounts_authtoken SET expires_at = %s WHERE id = %s", [past, token.pk])
    entry = authcache._entries[token.key_hash]
    authcache._entries[token.key_hash] = replace(entry, expires_at=past)
    assert_error(api.get(ME), 401, "not_authenticated")


def test_the_touch_does_not_empty_the_cache(api, user, settings, django_assert_num_queries):
    """Touching last_used_at is a write the cache needn't hear of, and the cached row
    remembers it: the next request neither re-reads nor touches again."""
    settings.RIFF_TOKEN_TOUCH_SECONDS = 0
    _warm(api)  # read + touch
    with django_assert_num_queries(1):  # the touch (more than 0 s since the last)
        assert api.get(ME).status_code == 200
    settings.RIFF_TOKEN_TOUCH_SECONDS = 600
    with django_assert_num_queries(0):
        assert api.get(ME).status_code == 200


def test_a_lost_stamp_or_an_old_entry_means_one_re_read(api, user, settings):
    from django.core.cache import cache
    from django.test.utils import CaptureQueriesContext

    _warm(api)
    cache._cache.get_client(write=True).flushdb()  # Redis restarted empty
    with CaptureQueriesContext(connection) as queries:
        assert api.get(ME).status_code == 200
    assert len(queries) == 1
    key_hash = AuthToken.objects.get(user=user).key_hash
    entry = authcache._entries[key_hash]
    authcache._entries[key_hash] = replace(
        entry, cached_at=entry.cached_at - settings.RIFF_AUTH_CACHE_SECONDS
    )
    with CaptureQueriesContext(connection) as queries:
        assert api.get(ME).status_code == 200
    assert len(queries) == 1


def test_turned_off_every_request_reads_postgres(api, settings, django_assert_num_queries):
    settings.RIFF_AUTH_CACHE_SECONDS = 0
    _warm(api)
    with django_assert_num_queries(1):
        assert api.get(ME).status_code == 200
    assert authcache._entries == {}


def test_each_request_gets_its_own_user_instance(user):
    raw = token_issue(user=user)
    first, second = token_authenticate(raw), token_authenticate(raw)
    assert first.user.pk == second.user.pk == user.pk
    assert first.user is not second.user
    first.user.display_name = "changed in one request"
    assert second.user.display_name == token_authenticate(raw).user.display_name == ""


# --- Redis unreachable ----------------------------------------------------------------------------


def test_without_redis_every_request_reads_postgres_and_the_cache_is_dropped(
    user, settings, django_assert_num_queries
):
    from config.core import redis as riff_redis
    from config.core import stamps

    raw = token_issue(user=user)
    assert token_authenticate(raw) is not None
    assert len(authcache._entries) == 1
    stamp_key = authcache.STAMP_PREFIX + hash_token(raw)
    stamp = redis_client().get(stamp_key)
    real_url = settings.REDIS_URL
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there
    riff_redis._client.cache_clear()
    try:
        with django_assert_num_queries(1):
            assert token_authenticate(raw).user.pk == user.pk
        assert authcache._entries == {}
        token_revoke(token=AuthToken.objects.get(user=user))
        assert token_authenticate(raw) is None
        # The revoke could not delete the stamp other processes check their entries against:
        # it is kept for when Redis answers again.
        assert stamp_key in stamps._pending
    finally:
        settings.REDIS_URL = real_url
        riff_redis._client.cache_clear()
    assert redis_client().get(stamp_key) == stamp
    riff_redis._last_degraded = float("-inf")
    stamps.flush_pending()  # what the retry timer does, seconds later
    assert redis_client().get(stamp_key) is None


# --- the user's rate limit rides the stamp's round trip ----------------------------------------


class ThreePerMinute(UserThrottle):
    rate = "3/min"

    def timer(self) -> float:
        return 6_000_000.0  # the start of a window: none turns mid-test


class Counted(APIView):
    authentication_classes = [BearerTokenAuthentication]
    permission_classes = [IsAuthenticated]
    throttle_classes = [ThreePerMinute]

    def get(self, request):
        return Response({"user": request.user.username})


def _call(raw: str):
    request = APIRequestFactory().get("/counted", HTTP_AUTHORIZATION=f"Bearer {raw}")
    return Counted.as_view()(request)


def test_the_rate_limit_counts_exactly_when_it_rides_the_stamp_check(user, redis_sends):
    raw = token_issue(user=user)
    # This thread's connection open: what follows counts requests' round trips only.
    command_run(redis_client(), "PING")
    statuses = []
    trips = []
    for _ in range(5):
        redis_sends.clear()
        statuses.append(_call(raw).status_code)
        trips.append(len(redis_sends))
    assert statuses == [200, 200, 200, 429, 429]
    # The first request reads the token (stamp, then PostgreSQL) and counts apart; every later
    # one is a single round trip.
    assert trips == [2, 1, 1, 1, 1]
    # The same count whichever way it was taken: a second token of the same user is refused.
    assert _call(token_issue(user=user)).status_code == 429


# --- a change racing a reader in another process --------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_reader_that_cached_the_old_rows_before_the_commit_re_reads_after_it(
    make_user,
):
    """The writer's transaction has revoked the token but not committed when another process
    (here a thread with its own connection) takes a fresh stamp and reads the old, still live,
    row. The stamp deleted on commit is what refuses the token afterwards."""
    user = make_user()
    raw = token_issue(user=user)
    # Touched now, so the reader below has no reason to write (it would wait on the writer's
    # row lock, and the writer waits for it).
    assert token_authenticate(raw) is not None
    authcache.forget_all()
    read_meanwhile = []

    def other_process() -> None:
        try:
            read_meanwhile.append(token_authenticate(raw))
        finally:
            connection.close()

    with transaction.atomic():
        token_revoke(token=AuthToken.objects.get(user=user))
        reader = threading.Thread(target=other_process)
        reader.start()
        reader.join()
        assert read_meanwhile[0] is not None  # the old row, cached under a fresh stamp
        assert hash_token(raw) in authcache._entries
    assert token_authenticate(raw) is None


def test_rows_read_under_a_missing_stamp_are_used_once_and_not_kept(user, monkeypatch):
    """The stamp's SET NX and GET are two commands (config.core.redis.Batch): a change
    committing between them leaves the GET nothing. Rows kept under no stamp would match the
    next request that also finds none, so they are not kept."""
    raw = token_issue(user=user)
    key_hash = hash_token(raw)
    read = authcache.stamp_read
    monkeypatch.setattr(authcache, "stamp_read", lambda replies: None)
    assert token_authenticate(raw).user_id == user.pk
    assert authcache.entry_get(key_hash) is None
    monkeypatch.setattr(authcache, "stamp_read", read)
    assert token_authenticate(raw).user_id == user.pk
    assert authcache.entry_get(key_hash) is not None and authcache.entry_get(key_hash).stamp

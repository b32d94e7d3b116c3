"""Bearer tokens: random secrets handed out once, stored as SHA-256 hashes.

Revoking a token also closes the websockets it opened (directly, or through a ticket minted
with it): every revocation below ends in `realtime.close_sockets`, which tells the user's
sockets over the channel layer once the revocation has committed.
"""

from __future__ import annotations

import functools
import hashlib
import secrets
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db.models import QuerySet
from django.db.models.base import ModelState
from django.db.models.signals import post_init, pre_init
from django.utils import timezone

from config.core.errors import BACKEND_DOWN_ERRORS
from config.core.redis import Batch, degraded, redis_client
from config.core.sql import fetchall

from . import authcache
from .models import AuthToken, User
from .realtime import close_sockets

TOKEN_PREFIX = "riff_"  # noqa: S105 - a public marker, not a secret


def hash_token(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def token_issue(*, user: User, user_agent: str = "") -> str:
    """Creates a token and returns the raw secret, which is never stored."""
    raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
    AuthToken.objects.create(
        key_hash=hash_token(raw),
        prefix=raw[: len(TOKEN_PREFIX) + 6],
        user=user,
        expires_at=timezone.now() + settings.RIFF_TOKEN_TTL,
        user_agent=user_agent[:200],
    )
    return raw


def token_lookup(raw: str, *, now: datetime | None = None) -> AuthToken | None:
    """The live token for a raw secret, or None (unknown, revoked, expired, inactive user),
    read from PostgreSQL.

    It is one prepared statement (the token joined to its user through the unique `key_hash`
    index) built into model instances directly: the ORM compiling the same query each time was
    a third of `GET /me`'s cost (docs/bench-feed.md). Requests go through `token_authenticate`,
    which reads here only when its cache can't answer."""
    if not _well_formed(raw):
        return None
    now = now or timezone.now()
    rows = _read(hash_token(raw), now)
    return _live(rows, now) if rows is not None else None


def token_authenticate(
    raw: str, *, preload: Callable[[Any, Any], Callable[[list], None] | None] | None = None
) -> AuthToken | None:
    """`token_lookup` through this process's cache (accounts.authcache): one Redis round trip
    checks the token's stamp, and when the cached rows are still good, PostgreSQL is not asked.
    `preload(pipe, user_id)` may queue more commands on that round trip (the user's rate limit)
    and return what takes their replies; it runs only when the cache has the token, because
    only then is the user known before PostgreSQL answers."""
    if not _well_formed(raw):
        return None
    if not authcache.enabled():
        return token_lookup(raw)
    key_hash = hash_token(raw)
    entry = authcache.entry_get(key_hash)
    # One EVALSHA for the stamp and the user's rate-limit window (config.core.redis.Batch).
    pipe = Batch(redis_client())
    authcache.stamp_queue(pipe, key_hash)
    take = preload(pipe, entry.user_id) if entry is not None and preload is not None else None
    try:
        replies = pipe.execute()
    except BACKEND_DOWN_ERRORS:
        degraded("auth_cache", "stamp read")
        authcache.forget_all()
        return token_lookup(raw)
    stamp = authcache.stamp_read(replies)
    now = timezone.now()
    if entry is not None and entry.stamp == stamp and entry.expires_at > now:
        token = _live((entry.token_row, entry.user_row), now, key_hash=key_hash, entry=entry)
    else:
        # Read after the stamp was taken: a change that commits from here on deletes it.
        rows = _read(key_hash, now)
        token = None
        if rows is not None and stamp is None:
            # The stamp went between its SET NX and its GET (a change committing right then):
            # rows cached under no stamp could be matched by a later request that also saw
            # none, so these are used once and not kept.
            token = _live(rows, now)
        elif rows is not None:
            fresh = _entry(rows, stamp)
            authcache.entry_put(key_hash, fresh)
            token = _live(rows, now, key_hash=key_hash, entry=fresh)
        if token is None:
            authcache.entry_drop(key_hash)
    if token is not None and take is not None and token.user_id == entry.user_id:
        take(replies)
    return token


def _well_formed(raw: str) -> bool:
    return raw.startswith(TOKEN_PREFIX) and len(raw) <= 100


def _entry(rows: tuple[tuple, tuple], stamp: bytes) -> authcache.Entry:
    _, token_columns, _ = _lookup_sql()
    return authcache.Entry(
        token_row=rows[0],
        user_row=rows[1],
        user_id=rows[0][token_columns.index("user_id")],
        expires_at=rows[0][token_columns.index("expires_at")],
        stamp=stamp,
        cached_at=time.monotonic(),
    )


def _read(key_hash: str, now: datetime) -> tuple[tuple, tuple] | None:
    """(token row, user row) of a live token from PostgreSQL, or None."""
    sql, token_columns, _ = _lookup_sql()
    rows = fetchall(sql, [key_hash, now])
    if not rows:
        return None
    split = len(token_columns)
    return tuple(rows[0][:split]), tuple(rows[0][split:])


def _live(
    rows: tuple[tuple, tuple],
    now: datetime,
    *,
    key_hash: str | None = None,
    entry: authcache.Entry | None = None,
) -> AuthToken | None:
    """Fresh model instances of the rows, None when the user is inactive; touches the token."""
    _, token_columns, user_columns = _lookup_sql()
    token = _instance(AuthToken, token_columns, rows[0])
    user = _instance(User, user_columns, rows[1])
    if not user.is_active:
        return None
    AuthToken.user.field.set_cached_value(token, user)  # token.user, its id already set
    # Touch at most every RIFF_TOKEN_TOUCH_SECONDS so reads don't turn into writes: with a
    # minute, 2,000 viewers scrolling turned one request in six into an UPDATE.
    last = token.last_used_at
    if last is None or (now - last).total_seconds() > settings.RIFF_TOKEN_TOUCH_SECONDS:
        AuthToken.objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now
        if entry is not None and key_hash is not None:
            # The cached row remembers the touch, or every request after it would touch again.
            touched = list(entry.token_row)
            touched[token_columns.index("last_used_at")] = now
            authcache.entry_put(key_hash, replace(entry, token_row=tuple(touched)))
    return token


def _instance(model, attnames: list[str], row: tuple):
    """`model.from_db("default", attnames, row)` for a row of all its concrete fields, without
    running `__init__`: the way Django itself rebuilds a pickled instance (`__new__`, then the
    attributes). `__init__` sets each field through its descriptor and sends `pre_init` and
    `post_init`, which made the two instances of an authenticated request 23-25 us of its
    ~450 (docs/bench-feed.md). Should anything listen to those signals for `model`, its
    instances are built the usual way, so it still hears them."""
    # Nothing listens to either in Riff: empty receiver lists answer without the per-sender
    # look-up (`has_listeners` was itself ~1.5 % of a feed page).
    if (pre_init.receivers and pre_init.has_listeners(model)) or (
        post_init.receivers and post_init.has_listeners(model)
    ):
        return model.from_db("default", attnames, row)
    instance = model.__new__(model)
    instance.__dict__.update(zip(attnames, row, strict=True))
    instance._state = state = ModelState()
    state.adding = False
    state.db = "default"
    return instance


@functools.cache
def _lookup_sql() -> tuple[str, list[str], list[str]]:
    token_fields = [f.attname for f in AuthToken._meta.concrete_fields]
    user_fields = [f.attname for f in User._meta.concrete_fields]
    t, u = AuthToken._meta.db_table, User._meta.db_table
    columns = [f't."{f.column}"' for f in AuthToken._meta.concrete_fields] + [
        f'u."{f.column}"' for f in User._meta.concrete_fields
    ]
    # Column and table names come from the models; the values are parameters.
    sql = (
        f"SELECT {', '.join(columns)} FROM {t} t JOIN {u} u ON u.id = t.user_id "  # noqa: S608
        "WHERE t.key_hash = %s AND t.revoked_at IS NULL AND t.expires_at > %s LIMIT 1"
    )
    return sql, token_fields, user_fields


def token_is_live(*, token_id: int, user_id: object, now: datetime | None = None) -> bool:
    """Whether token `token_id` of `user_id` still authenticates (websockets re-check this)."""
    return AuthToken.objects.filter(
        pk=token_id,
        user_id=user_id,
        user__is_active=True,
        revoked_at__isnull=True,
        expires_at__gt=now or timezone.now(),
    ).exists()


def token_revoke(*, token: AuthToken) -> bool:
    """Revokes one token (logout); sockets opened with it close. False if it already was."""
    revoked = AuthToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(
        revoked_at=timezone.now()
    )
    if revoked:
        close_sockets(user_id=token.user_id, token_ids=[token.pk])
    return bool(revoked)


def token_revoke_all(*, user: User) -> int:
    """Revokes every token of `user` and closes all their sockets (logout-all, deactivation,
    deletion, a password set by staff)."""
    count = AuthToken.objects.filter(user=user, revoked_at__isnull=True).update(
        revoked_at=timezone.now()
    )
    # Even with no live token left, a socket may outlive one that just expired: close them all.
    close_sockets(user_id=user.pk, token_ids=None)
    return count


def tokens_revoke(*, tokens: QuerySet[AuthToken]) -> int:
    """Revokes any set of tokens, across users (the admin's "revoke" action)."""
    rows = list(tokens.filter(revoked_at__isnull=True).values_list("pk", "user_id"))
    if not rows:
        return 0
    count = AuthToken.objects.filter(pk__in=[pk for pk, _ in rows], revoked_at__isnull=True).update(
        revoked_at=timezone.now()
    )
    by_user: dict[object, list[int]] = defaultdict(list)
    for pk, user_id in rows:
        by_user[user_id].append(pk)
    for user_id, token_ids in by_user.items():
        close_sockets(user_id=user_id, token_ids=token_ids)
    return count

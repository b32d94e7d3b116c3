"""Bearer tokens: random secrets handed out once, stored as SHA-256 hashes.

Revoking a token also closes the websockets it opened (directly, or through a ticket minted
with it): every revocation below ends in `realtime.close_sockets`, which tells the user's
sockets over the channel layer once the revocation has committed.
"""

from __future__ import annotations

import functools
import hashlib
import secrets
from collections import defaultdict
from datetime import datetime

from django.conf import settings
from django.db.models import QuerySet
from django.utils import timezone

from config.core.sql import fetchall

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
    """The live token for a raw secret, or None (unknown, revoked, expired, inactive user).

    Every authenticated request runs this, so it is one prepared statement (the token joined to
    its user through the unique `key_hash` index) built into model instances directly: the ORM
    compiling the same query each time was a third of `GET /me`'s cost (docs/bench-feed.md)."""
    if not raw.startswith(TOKEN_PREFIX) or len(raw) > 100:
        return None
    now = now or timezone.now()
    sql, token_columns, user_columns = _lookup_sql()
    rows = fetchall(sql, [hash_token(raw), now])
    if not rows:
        return None
    row = rows[0]
    split = len(token_columns)
    token = AuthToken.from_db("default", token_columns, row[:split])
    token.user = User.from_db("default", user_columns, row[split:])
    if not token.user.is_active:
        return None
    # Touch at most every RIFF_TOKEN_TOUCH_SECONDS so reads don't turn into writes: with a
    # minute, 2,000 viewers scrolling turned one request in six into an UPDATE.
    last = token.last_used_at
    if last is None or (now - last).total_seconds() > settings.RIFF_TOKEN_TOUCH_SECONDS:
        AuthToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return token


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

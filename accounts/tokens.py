"""Bearer tokens: random secrets handed out once, stored as SHA-256 hashes.

Revoking a token also closes the websockets it opened (directly, or through a ticket minted
with it): every revocation below ends in `realtime.close_sockets`, which tells the user's
sockets over the channel layer once the revocation has committed.
"""

from __future__ import annotations

import hashlib
import secrets
from collections import defaultdict
from datetime import datetime

from django.conf import settings
from django.db.models import QuerySet
from django.utils import timezone

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
    """The live token for a raw secret, or None (unknown, revoked, expired, inactive user)."""
    if not raw.startswith(TOKEN_PREFIX) or len(raw) > 100:
        return None
    now = now or timezone.now()
    token = (
        AuthToken.objects.select_related("user")
        .filter(key_hash=hash_token(raw), revoked_at__isnull=True, expires_at__gt=now)
        .first()
    )
    if token is None or not token.user.is_active:
        return None
    # Touch at most once a minute so reads don't turn into a write per request.
    if token.last_used_at is None or (now - token.last_used_at).total_seconds() > 60:
        AuthToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return token


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

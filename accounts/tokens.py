"""Bearer tokens: random secrets handed out once, stored as SHA-256 hashes."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime

from django.conf import settings
from django.utils import timezone

from .models import AuthToken, User

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


def token_revoke(*, token: AuthToken) -> None:
    AuthToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())


def token_revoke_all(*, user: User) -> int:
    return AuthToken.objects.filter(user=user, revoked_at__isnull=True).update(
        revoked_at=timezone.now()
    )

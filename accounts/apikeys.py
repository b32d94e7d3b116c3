"""API keys for the Videos API at /v1/ (issue #32): create, list, revoke, look up.

A key is `rk_` followed by `secrets.token_urlsafe(32)` (43 URL-safe characters, 256 random
bits). It is shown once, at creation; only its SHA-256 is stored. A slow password KDF (bcrypt,
argon2) exists to make guessing a *low-entropy* secret from its hash expensive; 256 random bits
can't be guessed whatever the hash costs, so a plain SHA-256 is enough and keeps the lookup
every /v1/ request makes to one index probe.

Keys authenticate only on /v1/ (accounts.authentication.ApiKeyAuthentication); they are
managed with the normal session token under /api/v1/me/api-keys.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import uuid
from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from config.core.errors import Conflict, NotFound

from .models import ApiKey, User

API_KEY_PREFIX = "rk_"  # a public marker, not a secret
PREFIX_CHARS = 12
# Exactly what `API_KEY_PREFIX + secrets.token_urlsafe(32)` produces: anything else can't be a
# key, and is refused before it costs a query.
_KEY_SHAPE = re.compile(r"rk_[A-Za-z0-9_-]{43}")


def hash_api_key(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def looks_like_api_key(raw: object) -> bool:
    """Whether `raw` has the shape of a key (says nothing about whether it exists)."""
    return isinstance(raw, str) and _KEY_SHAPE.fullmatch(raw) is not None


# --- reads -------------------------------------------------------------------------------------


def api_keys_of(*, user: User) -> QuerySet[ApiKey]:
    """The user's live keys (the list endpoint orders and pages them)."""
    return ApiKey.objects.filter(user=user, revoked_at__isnull=True)


def api_key_lookup(raw: str, *, now: datetime | None = None) -> ApiKey | None:
    """The live key for a raw secret, with `user` loaded (one query), or None: not shaped like
    a key (no query then), unknown, revoked, or its user is inactive (banned, deactivated).

    The secret is hashed before it reaches the database, so the index probe's timing says
    nothing about the secret. `last_used_at` is written at most every
    RIFF_TOKEN_TOUCH_SECONDS, as for session tokens, so reads don't turn into writes."""
    if not looks_like_api_key(raw):
        return None
    key = (
        ApiKey.objects.select_related("user")
        .filter(key_hash=hash_api_key(raw), revoked_at__isnull=True, user__is_active=True)
        .first()
    )
    if key is None:
        return None
    now = now or timezone.now()
    last = key.last_used_at
    if last is None or (now - last).total_seconds() > settings.RIFF_TOKEN_TOUCH_SECONDS:
        ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
        key.last_used_at = now
    return key


# --- writes ------------------------------------------------------------------------------------


@transaction.atomic
def api_key_create(*, user: User, name: str) -> tuple[ApiKey, str]:
    """Creates a key named `name` (already validated: 1..100 characters) and returns it with
    the raw secret, which is never stored and can't be shown again. Beyond
    RIFF_API_KEYS_PER_USER live keys: 409 `too_many_api_keys` (revoke one first)."""
    # Lock the user row so two concurrent creates can't both pass the cap.
    User.objects.select_for_update().filter(pk=user.pk).first()
    cap = settings.RIFF_API_KEYS_PER_USER
    if api_keys_of(user=user).count() >= cap:
        raise Conflict(
            f"You already have {cap} API keys; revoke one before creating another.",
            code="too_many_api_keys",
        )
    raw = API_KEY_PREFIX + secrets.token_urlsafe(32)
    key = ApiKey.objects.create(
        user=user, name=name, prefix=raw[:PREFIX_CHARS], key_hash=hash_api_key(raw)
    )
    return key, raw


def _as_uuid(value: object) -> uuid.UUID | None:
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


@transaction.atomic
def api_key_revoke(*, user: User, key_id: uuid.UUID | str) -> ApiKey:
    """Revokes one of `user`'s keys: it stops working at once. 404 `not_found` for an unknown
    id or another user's key (indistinguishable). Revoking a revoked key changes nothing and is
    not an error, so a retried DELETE succeeds."""
    pk = _as_uuid(key_id)
    key = (
        ApiKey.objects.select_for_update().filter(pk=pk, user=user).first()
        if pk is not None
        else None
    )
    if key is None:
        raise NotFound("No such API key.")
    if key.revoked_at is None:
        key.revoked_at = timezone.now()
        key.save(update_fields=["revoked_at"])
    return key


def api_keys_revoke(*, keys: QuerySet[ApiKey]) -> int:
    """Revokes any set of keys, across users (the admin's action). Returns how many were live."""
    return keys.filter(revoked_at__isnull=True).update(revoked_at=timezone.now())

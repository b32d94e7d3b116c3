"""Hooks cameos declares for upper layers (config.core.hooks; implementations in RIFF_HOOKS)."""

from __future__ import annotations

from typing import Protocol

from accounts.models import User
from config.core import hooks

from .models import Cameo


class CameoRevoked(Protocol):
    """The cameo was revoked (owner, staff, account deletion): every use of the likeness ends
    (jobs stop, videos showing it go). Inside the revoking transaction."""

    def __call__(self, *, cameo: Cameo) -> None: ...


class CameoConsentWithdrawn(Protocol):
    """`user` may no longer use `cameo` (grant removed, block): their jobs using it stop."""

    def __call__(self, *, cameo: Cameo, user: User) -> None: ...


CAMEO_REVOKED = hooks.define("cameo.revoked", CameoRevoked)
CAMEO_CONSENT_WITHDRAWN = hooks.define("cameo.consent_withdrawn", CameoConsentWithdrawn)

"""Hooks accounts declares for upper layers (config.core.hooks; implementations in RIFF_HOOKS)."""

from __future__ import annotations

from typing import Protocol

from config.core import hooks

from .models import User


class AccountDeleted(Protocol):
    """Runs inside the deletion transaction, before the user row goes: remove what the app
    keeps for the user (files, rows without a cascade, counts on other people's rows)."""

    def __call__(self, *, user: User) -> None: ...


class UserBlocked(Protocol):
    """`blocker` just blocked `blocked`: void what one side could do to the other."""

    def __call__(self, *, blocker: User, blocked: User) -> None: ...


ACCOUNT_DELETED = hooks.define("account.deleted", AccountDeleted)
USER_BLOCKED = hooks.define("user.blocked", UserBlocked)

"""The stamps accounts keeps for caches in upper layers (config.core.stamps).

- `user:<id>`: the user's row (name, display name, avatar, active). Dropped by every save,
  delete and queryset `update()` of users (accounts.models, accounts.apps).
- `graph:<id>`: whom the user follows and the blocks either way. Dropped by follow and block
  changes (accounts.services), for each side a change concerns.
"""

from __future__ import annotations

from collections.abc import Iterable

from config.core.stamps import stamp_key, stamps_drop


def user_stamp(user_id) -> str:
    return stamp_key("user", user_id)


def graph_stamp(user_id) -> str:
    return stamp_key("graph", user_id)


def users_changed(user_ids: Iterable) -> None:
    stamps_drop(user_stamp(pk) for pk in user_ids)


def graph_changed(*user_ids) -> None:
    stamps_drop(graph_stamp(pk) for pk in user_ids)


def on_user_saved(sender, instance, created: bool, **kwargs) -> None:
    if not created:
        users_changed([instance.pk])


def on_user_deleted(sender, instance, **kwargs) -> None:
    users_changed([instance.pk])
    graph_changed(instance.pk)

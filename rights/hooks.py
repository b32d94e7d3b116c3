"""Hooks rights declares for upper layers (config.core.hooks; implementations in RIFF_HOOKS)."""

from __future__ import annotations

from typing import Protocol

from config.core import hooks

from .split import Contributor


class RevenueContributors(Protocol):
    """Who took part in post `post_id`, for splitting its revenue (rights.split).

    Each implementation returns the contributors it knows of: feed the creator and the owners
    of monetised cameos in the video, remix the ancestors (depth 1 = parent), rights the IP
    holders of licensed claims. An unknown post gives []. Called outside any lock; reads only.
    """

    def __call__(self, *, post_id) -> list[Contributor]: ...


REVENUE_CONTRIBUTORS = hooks.define("revenue.contributors", RevenueContributors)

"""For You ranking (sources -> scoring -> re-ranking -> creation cards -> snapshot)."""

from __future__ import annotations

from rest_framework.request import Request

from ..feeds import FeedPage, latest_page


def for_you_page(request: Request) -> FeedPage:
    # Until the ranker lands, For You serves the Latest order.
    return latest_page(request)

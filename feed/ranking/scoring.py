"""Scoring: creation signals dominate consumption signals.

Each engagement rate is additively smoothed towards a platform prior,
`rate = (count + ALPHA * prior) / (views + ALPHA)`, so a post with 2 views and 1 remix doesn't
outrank one with 10,000 views and 400 remixes, and is then expressed as a *lift* over its prior
(1.0 = an average post). The weighted lifts make the quality score; remix and cameo-use lifts
carry weights 8 and 6 times a like's or a completed watch's, so one extra remix per 100 views
moves a post further than doubling its likes. "See less" subtracts. Quality is then multiplied
by recency (a half-life), the strongest source's multiplier, the steering match and the
viewer's own negative feedback. The weights live in `RIFF_FEED_WEIGHTS` (docs/feed.md).
"""

from __future__ import annotations

import math
from datetime import datetime

import numpy as np
from django.conf import settings

from .sources import Candidate

# Pseudo-impressions of the prior in every smoothed rate.
ALPHA = 100.0
PRIORS = {"remix": 0.02, "cameo_use": 0.01, "like": 0.08, "watch": 0.3, "see_less": 0.01}
SOURCE_MULTIPLIER = {
    "cameo_graph": 1.5,
    "remix_lineage": 1.3,
    "following": 1.2,
    "steering": 1.2,
    "cold_start": 1.1,
    "trending": 1.0,
    "latest": 0.8,
}
SEEN_MULTIPLIER = 0.05
AUTHOR_SEE_LESS_MULTIPLIER = 0.2
MIN_QUALITY = 0.05


def smoothed_lift(count: int, views: int, prior: float) -> float:
    views = max(views, count)
    return (count + ALPHA * prior) / (views + ALPHA) / prior


def quality(c: Candidate, weights: dict) -> float:
    lift = {
        "remix": smoothed_lift(c.remixes, c.views, PRIORS["remix"]),
        "cameo_use": smoothed_lift(c.cameo_uses, c.views, PRIORS["cameo_use"]),
        "like": smoothed_lift(c.likes, c.views, PRIORS["like"]),
        "watch": smoothed_lift(c.completes, c.views, PRIORS["watch"]),
        "see_less": smoothed_lift(c.see_less, c.views, PRIORS["see_less"]),
    }
    value = (
        weights["remix"] * lift["remix"]
        + weights["cameo_use"] * lift["cameo_use"]
        + weights["like"] * lift["like"]
        + weights["watch"] * lift["watch"]
        # Only see-less above the average rate costs anything.
        - weights["see_less"] * max(0.0, lift["see_less"] - 1.0)
        + weights["remixable"] * (1.0 if c.allow_remix else 0.0)
    )
    return max(value, MIN_QUALITY)


def score_all(
    cands: list[Candidate], *, now: datetime, steer: np.ndarray | None = None
) -> list[Candidate]:
    """Sets `score` on every candidate; returns them best first."""
    weights = settings.RIFF_FEED_WEIGHTS
    half_life = weights["half_life_hours"]
    for c in cands:
        age_h = max(0.0, (now - c.created_at).total_seconds() / 3600)
        value = quality(c, weights) * math.pow(0.5, age_h / half_life)
        value *= max(SOURCE_MULTIPLIER.get(r, 1.0) for r in c.reasons)
        if steer is not None and c.embedding is not None:
            value *= 1.0 + weights["steer"] * max(0.0, float(c.embedding @ steer))
        if c.author_see_less:
            value *= AUTHOR_SEE_LESS_MULTIPLIER
        if c.seen:
            value *= SEEN_MULTIPLIER
        c.score = value
    cands.sort(key=lambda c: c.score, reverse=True)
    return cands

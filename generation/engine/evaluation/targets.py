"""The quality targets of the shipped model, defined once.

The evaluation report's `met` and the model card's target column are both computed from
this table, so a target changed here changes every verdict the next report gives (and the
card's table test fails until the card is regenerated).
"""

from __future__ import annotations

# a rate of the generated clips (a floor), or the arcs' rms residual against the simulator's
TARGETS: dict[str, float] = {
    "color": 0.90,
    "shape": 0.80,
    "count": 0.80,
    "permanence": 0.80,
    "physics_rms_ratio": 2.0,
}
# the targets a value must stay at or under; every other is a floor
CEILINGS = frozenset({"physics_rms_ratio"})


def measured(report: dict, key: str) -> float | None:
    """The value of a report (or of `{"generated": ..., "physics_rms_ratio": ...}`) that the
    target `key` judges; None where the report has no clips for it."""
    if key == "physics_rms_ratio":
        return report.get("physics_rms_ratio")
    return report["generated"].get(key)


def is_met(key: str, value: float | None, targets: dict[str, float] | None = None) -> bool:
    """Whether `value` meets the target `key`; a metric with no clips meets nothing."""
    target = (TARGETS if targets is None else targets)[key]
    if value is None:
        return False
    return value <= target if key in CEILINGS else value >= target


def targets_met(report: dict, targets: dict[str, float] | None = None) -> dict[str, bool]:
    targets = TARGETS if targets is None else targets
    return {key: is_met(key, measured(report, key), targets) for key in targets}


def target_text(key: str, targets: dict[str, float] | None = None) -> str:
    """The target as the card's table states it: "≥ 90 %", "≤ 2× simulator"."""
    target = (TARGETS if targets is None else targets)[key]
    if key == "physics_rms_ratio":
        return f"≤ {target:g}× simulator"
    return f"{'≤' if key in CEILINGS else '≥'} {100 * target:g} %"

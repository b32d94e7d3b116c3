"""The quality targets of the shipped model, defined once, and how a report is judged by them.

The evaluation report's verdicts and the model card's target column are both computed from
this table, so a target changed here changes every verdict the next report gives (and the
card's table test fails until the card is regenerated).

A target is judged on the 95 % interval of what was measured, never on the estimate alone:
a floor is "met" when the interval's lower bound clears it, "not met" when its upper bound
is under it, and "undecided" when the interval straddles it (a ceiling the other way round).
The rates carry Wilson intervals over their clips; the physics ratio a bootstrap interval
over its clips (metrics.physics_ratio). A report without an interval for a target (no clips
for it, or written before intervals were judged) decides nothing: "undecided".
"""

from __future__ import annotations

# a rate of the generated clips (a floor), or the generated clips' rms off the world's own
# trajectory against the simulator's clips' (a ceiling)
TARGETS: dict[str, float] = {
    "color": 0.90,
    "shape": 0.80,
    "count": 0.80,
    "permanence": 0.80,
    "physics_rms_ratio": 2.0,
}
# the targets a value must stay at or under; every other is a floor
CEILINGS = frozenset({"physics_rms_ratio"})
VERDICTS = ("met", "not met", "undecided")


def measured(report: dict, key: str) -> float | None:
    """The estimate of a report (or of `{"generated": ..., "physics_rms_ratio": ...}`) that
    the target `key` judges; None where the report has no clips for it."""
    if key == "physics_rms_ratio":
        return report.get("physics_rms_ratio")
    return report["generated"].get(key)


def interval(report: dict, key: str) -> tuple[float, float] | None:
    """The 95 % interval of `measured(report, key)`; None where there is none."""
    where = report if key == "physics_rms_ratio" else report["generated"]
    ci = where.get(f"{key}_ci95")
    return None if ci is None else (float(ci[0]), float(ci[1]))


def verdict(
    key: str, ci: tuple[float, float] | None, targets: dict[str, float] | None = None
) -> str:
    """ "met", "not met" or "undecided": where the interval `ci` lies against the target."""
    target = (TARGETS if targets is None else targets)[key]
    if ci is None:
        return "undecided"
    lo, hi = ci
    if key in CEILINGS:
        return "met" if hi <= target else "not met" if lo > target else "undecided"
    return "met" if lo >= target else "not met" if hi < target else "undecided"


def is_met(
    key: str, ci: tuple[float, float] | None, targets: dict[str, float] | None = None
) -> bool:
    """Whether the interval `ci` meets the target `key` outright; a metric with no clips (no
    interval) meets nothing."""
    return verdict(key, ci, targets) == "met"


def verdicts(report: dict, targets: dict[str, float] | None = None) -> dict[str, str]:
    targets = TARGETS if targets is None else targets
    return {key: verdict(key, interval(report, key), targets) for key in targets}


def targets_met(report: dict, targets: dict[str, float] | None = None) -> dict[str, bool]:
    return {key: v == "met" for key, v in verdicts(report, targets).items()}


def target_text(key: str, targets: dict[str, float] | None = None) -> str:
    """The target as the card's table states it: "≥ 90 %", "≤ 2× simulator"."""
    target = (TARGETS if targets is None else targets)[key]
    if key == "physics_rms_ratio":
        return f"≤ {target:g}× simulator"
    return f"{'≤' if key in CEILINGS else '≥'} {100 * target:g} %"

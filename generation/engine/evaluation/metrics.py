"""Per-clip metrics by image analysis, and their summary over a set of clips.

Metrics (rates are fractions of the clips where the metric applies):
  color       every requested colour is present in >= half the frames and the dominant
              object colour is a requested one
  shape       each single-shape colour group is classified as the requested shape
  count       the mode over frames of the number of object blobs equals the requested count
  physics     quadratic fits of the centroid's height between bounces: rms residual (px),
              fitted gravity and restitution (medians), single-object clips
  permanence  an object that disappears behind the wall comes out again within 6 px of
              where its pre-occlusion motion (or the wall's far edge) puts it
  cameo       the largest object carries the sprite (mean |RGB| error < 0.15 on the 8x8 grid)
  continuity  remix conditioning: given the first 4 frames of a longer simulated clip as
              context, the generated clip's first frame puts the first object within 4 px of
              where the simulation has it; the same prompt and seed without context is the
              baseline (chance of landing there by luck)

numpy only; the targets these are judged against are in targets.py.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..world import Clip, WorldConfig, eval_seed, make_clip, make_sprite
from .analysis import ClipAnalysis, cameo_error, fit_ballistic, permanence

CAMEO_OK = 0.15
CONTINUITY_PX = 4.0
CONTEXT_FRAMES = 4
# continuation clips use their own evaluation seeds, away from heldout_clips' range
CONTINUITY_SEED_OFFSET = 500_000


def clip_metrics(frames: np.ndarray, ref: Clip) -> dict:
    """Metrics of `frames` against what `ref`'s caption asks for."""
    an = ClipAnalysis(frames)
    spec = ref.spec
    plain = [o for o in spec.objects if o.pattern is None]
    colors = sorted({o.color for o in plain})
    m: dict = {"seed": ref.seed, "caption": ref.caption}
    if plain:
        present = set(an.present_colors())
        dom = an.dominant_color()
        m["dominant"] = dom
        m["color"] = bool(set(colors) <= present and (spec.cameo or dom in colors))
        shapes_ok = []
        for c in colors:
            wanted = {o.shape for o in plain if o.color == c}
            if len(wanted) == 1:
                shapes_ok.append(an.shape(c) == next(iter(wanted)))
        if shapes_ok:
            m["shape"] = bool(all(shapes_ok))
    if not spec.cameo:
        m["count"] = bool(an.count() == len(spec.objects))
        m["count_found"] = int(an.count())
        m["count_asked"] = len(spec.objects)
    if (
        len(spec.objects) == 1
        and not spec.cameo
        and spec.occluder_x is None
        and spec.motion in ("bounces", "falls", "tossed")
    ):
        fit = fit_ballistic(an.track(plain[0].color))
        if fit["rms"] is not None:
            m["physics"] = fit
    if ONLY_KINDS["wall"](ref):  # behind the wall, with an object of a plain colour
        m["permanence"] = permanence(an, plain[0].color)
    if spec.cameo and ref.cameo_pattern is not None:
        rng = np.random.default_rng(ref.seed + 7)
        m["cameo_error"] = cameo_error(frames, ref.cameo_pattern)
        m["cameo_chance_error"] = cameo_error(frames, make_sprite(rng))
        m["cameo"] = bool(m["cameo_error"] < CAMEO_OK)
    return m


def continuation_clips(n: int, cfg: WorldConfig) -> list[tuple[np.ndarray, Clip]]:
    """(context frames, clip to continue) pairs: a clip simulated CONTEXT_FRAMES longer, split
    into its first frames and the rest (whose caption, spec and trajectories still apply)."""
    long_cfg = replace(cfg, frames=cfg.frames + CONTEXT_FRAMES)
    out = []
    for i in range(n):
        c = make_clip(eval_seed(CONTINUITY_SEED_OFFSET + i), long_cfg, split="all")
        rest = replace(
            c, frames=c.frames[CONTEXT_FRAMES:], trajectories=c.trajectories[:, CONTEXT_FRAMES:]
        )
        out.append((c.frames[:CONTEXT_FRAMES], rest))
    return out


def continuity_error(frames: np.ndarray, ref: Clip) -> float | None:
    """Pixel distance between the first object's centroid in the first frame of `frames` and
    in the reference continuation; None when the reference has it hidden."""
    obj = ref.spec.objects[0]
    want = ClipAnalysis(ref.frames[:1]).track(obj.color)[0]
    got = ClipAnalysis(frames[:1]).track(obj.color)[0]
    if np.isnan(want).any():
        return None
    if np.isnan(got).any():
        return float("inf")
    return float(np.hypot(*(got - want)))


def wilson_interval(k: int, n: int, z: float = 1.96) -> tuple[float, float] | None:
    """95 % Wilson score interval of a rate of k successes in n clips (None without clips).

    The rates here rest on 18 to 90 clips, and any change to the weights or the sampler
    re-draws every clip: one clip is 1 to 6 points, and the interval says which differences
    between two runs are larger than drawing another set of the same size would give."""
    if n <= 0:
        return None
    p = k / n
    d = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / d
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return float(max(0.0, centre - half)), float(min(1.0, centre + half))


MISS_KINDS = ("never_hidden", "not_back", "off_track")

# evaluate_engine(only=...): the clips of a slice a metric is scored on ("wall" is also the
# test clip_metrics scores permanence by, so the two cannot drift apart)
ONLY_KINDS = {
    "wall": lambda c: (
        c.spec.occluder_x is not None and any(o.pattern is None for o in c.spec.objects)
    ),
    "cameo": lambda c: bool(c.spec.cameo),
}


def permanence_miss(p: dict) -> str | None:
    """How a permanence clip failed, None when it did not: the object never went out of sight
    (drawn over the wall; also counted here: never drawn at all), went behind the wall and
    never came back, or came back more than the tolerance off its track."""
    if p["ok"]:
        return None
    if not p["occluded"]:
        return "never_hidden"
    return "off_track" if p["reappeared"] else "not_back"


def summarize(rows: list[dict]) -> dict:
    out: dict = {}

    def put(key: str, oks: list[bool]) -> None:
        out[key] = float(np.mean(oks)) if oks else None
        out[f"{key}_n"] = len(oks)
        out[f"{key}_ci95"] = wilson_interval(int(sum(oks)), len(oks))

    for key in ("color", "shape", "count", "cameo"):
        put(key, [bool(r[key]) for r in rows if key in r])
    # count by how many objects the caption asks for: where the misses are
    by_n: dict[str, list[int]] = {}
    for r in rows:
        if "count_asked" in r:
            ok_n = by_n.setdefault(str(r["count_asked"]), [0, 0])
            ok_n[0] += int(bool(r["count"]))
            ok_n[1] += 1
    out["count_by_n"] = {k: {"ok": v[0], "n": v[1]} for k, v in sorted(by_n.items())}
    perm = [r["permanence"] for r in rows if "permanence" in r]
    put("permanence", [bool(p["ok"]) for p in perm])
    out["occluded_rate"] = float(np.mean([p["occluded"] for p in perm])) if perm else None
    kinds = [permanence_miss(p) for p in perm]
    out["permanence_misses"] = {k: kinds.count(k) for k in MISS_KINDS} if perm else None
    phys = [r["physics"] for r in rows if "physics" in r]
    out["physics_n"] = len(phys)
    for k in ("rms", "gravity", "restitution"):
        vals = [p[k] for p in phys if p[k] is not None]
        out[f"physics_{k}"] = float(np.median(vals)) if vals else None
    cam = [r for r in rows if "cameo_error" in r]
    if cam:
        out["cameo_error"] = float(np.mean([r["cameo_error"] for r in cam]))
        out["cameo_chance_error"] = float(np.mean([r["cameo_chance_error"] for r in cam]))
    return out

"""Per-clip metrics by image analysis, and their summary over a set of clips.

Metrics (rates are fractions of the clips where the metric applies; every row also says
whether its prompt is held out or from the training distribution, `prompt_kind`):
  color       every requested colour is present in >= half the frames and the dominant
              object colour is a requested one
  shape       each single-shape colour group is classified as the requested shape
  count       the mode over frames of the number of objects (connected regions of object
              colours, whatever their colours) equals the requested count
  physics     single-object clips that bounce, fall or are tossed: the tracked centroid
              against the world's own trajectory that comes closest to it, frame by frame
              (rms px, bounce frames within one); an untracked object fails. The rms against
              the simulator's clips' (the analysis's own noise) is the target's ratio; the
              quadratic arc fits (gravity, restitution) ride along
  permanence  an object that goes behind the wall comes out when (within a frame) and where
              (within 6 px) the world's trajectory through what the clip showed before
              brings it out, after being hidden as long (within a frame)
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

from ..world import Clip, WorldConfig, allowed_pairs, eval_seed, make_clip, make_sprite
from .analysis import ClipAnalysis, cameo_error, permanence, physics

CAMEO_OK = 0.15
CONTINUITY_PX = 4.0
CONTEXT_FRAMES = 4
# continuation clips use their own evaluation seeds, away from heldout_clips' range
CONTINUITY_SEED_OFFSET = 500_000


PROMPT_KINDS = ("heldout", "seen")


def prompt_kind(ref: Clip) -> str:
    """ "seen" when every colour x shape pair the caption names is one training draws
    (world.allowed_pairs("train"): such captions also occur word for word among training
    captions), else "heldout". A cameo names no pair for its object."""
    train = set(allowed_pairs("train"))
    pairs = {(o.color, o.shape) for o in ref.spec.objects if o.pattern is None}
    return "seen" if pairs <= train else "heldout"


def world_of(ref: Clip, frames: np.ndarray) -> WorldConfig:
    """The world `ref` was simulated in (its gravity and restitution), at the clip's size."""
    T, H, W = frames.shape[:3]
    return WorldConfig(
        frames=T,
        height=H,
        width=W,
        gravity=ref.physics["gravity"],
        restitution=ref.physics["restitution"],
        substeps=ref.physics["substeps"],
    )


def clip_metrics(frames: np.ndarray, ref: Clip) -> dict:
    """Metrics of `frames` against what `ref`'s caption asks for."""
    an = ClipAnalysis(frames)
    spec = ref.spec
    plain = [o for o in spec.objects if o.pattern is None]
    colors = sorted({o.color for o in plain})
    cfg = world_of(ref, frames)
    m: dict = {"seed": ref.seed, "caption": ref.caption, "prompt": prompt_kind(ref)}
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
        o = plain[0]
        m["physics"] = physics(an, o.color, o.shape, o.radius(cfg), spec.motion, cfg)
    if ONLY_KINDS["wall"](ref):  # behind the wall, with an object of a plain colour
        o = plain[0]
        m["permanence"] = permanence(
            an, o.color, o.shape, o.radius(cfg), spec.motion, cfg, wall_x=spec.occluder_x
        )
    if spec.cameo and ref.cameo_pattern is not None:
        rng = np.random.default_rng(ref.seed + 7)
        m["cameo_error"] = cameo_error(frames, ref.cameo_pattern)
        m["cameo_chance_error"] = cameo_error(frames, make_sprite(rng))
        m["cameo"] = bool(m["cameo_error"] < CAMEO_OK)
    return m


def continuation_clips(n: int, cfg: WorldConfig, start: int = 0) -> list[tuple[np.ndarray, Clip]]:
    """(context frames, clip to continue) pairs: a clip simulated CONTEXT_FRAMES longer, split
    into its first frames and the rest (whose caption, spec and trajectories still apply).
    `start` skips the first pairs of the sequence, as heldout_clips' does: a slice of the
    evaluation draws its continuations from the same index on, so that two slices that do
    not overlap score different continuations (each run scored the same first ones)."""
    long_cfg = replace(cfg, frames=cfg.frames + CONTEXT_FRAMES)
    out = []
    for i in range(start, start + n):
        c = make_clip(eval_seed(CONTINUITY_SEED_OFFSET + i), long_cfg, split="all")
        rest = replace(
            c,
            frames=c.frames[CONTEXT_FRAMES:],
            trajectories=c.trajectories[:, CONTEXT_FRAMES:],
            visible_fraction=c.visible_fraction[:, CONTEXT_FRAMES:],
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


def difference_interval(k1: int, n1: int, k2: int, n2: int) -> tuple[float, float] | None:
    """95 % interval of the difference of two rates, k1/n1 - k2/n2 (Newcombe's hybrid score
    interval, from the two Wilson intervals): what the attention ablation is decided by. None
    when either side has no clips."""
    a, b = wilson_interval(k1, n1), wilson_interval(k2, n2)
    if a is None or b is None:
        return None
    p1, p2 = k1 / n1, k2 / n2
    d = p1 - p2
    lower = d - float(np.hypot(p1 - a[0], b[1] - p2))
    upper = d + float(np.hypot(a[1] - p1, p2 - b[0]))
    return lower, upper


MISS_KINDS = ("never_hidden", "not_back", "wrong_time", "off_track")

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
    never came back, came back a frame or more earlier or later than the world brings it
    out (or after a hiding of the wrong length), or came back on time but off its track.
    Reports from before the timing was checked have no "timing_ok": their misses with the
    object back are all off track."""
    if p["ok"]:
        return None
    if not p["occluded"]:
        return "never_hidden"
    if not p["reappeared"]:
        return "not_back"
    return "wrong_time" if p.get("timing_ok") is False else "off_track"


RATE_KEYS = ("color", "shape", "count", "permanence", "physics", "cameo")


def _rate_of(r: dict, key: str) -> bool | None:
    """A row's pass/fail for a rate, None where the metric does not apply to it."""
    if key not in r:
        return None
    v = r[key]
    return bool(v["ok"]) if isinstance(v, dict) else bool(v)


def rates(rows: list[dict], keys: tuple[str, ...] = RATE_KEYS) -> dict:
    """`key`, `key_n` and `key_ci95` (Wilson) of each rate over the rows it applies to."""
    out: dict = {}
    for key in keys:
        oks = [ok for ok in (_rate_of(r, key) for r in rows) if ok is not None]
        out[key] = float(np.mean(oks)) if oks else None
        out[f"{key}_n"] = len(oks)
        out[f"{key}_ci95"] = wilson_interval(int(sum(oks)), len(oks))
    return out


def _rms(p: dict) -> float:
    """A physics row's rms off the world's trajectory; an untracked object is infinitely
    far off (it fails, and counts, rather than dropping out)."""
    return float("inf") if p["rms"] is None else float(p["rms"])


def summarize(rows: list[dict]) -> dict:
    out: dict = rates(rows)
    # the same rates over held-out prompts and over prompts from the training distribution
    # (rows from before the split was recorded have no "prompt")
    if any("prompt" in r for r in rows):
        out["by_prompt"] = {
            kind: {"clips": sum(r.get("prompt") == kind for r in rows)}
            | rates([r for r in rows if r.get("prompt") == kind])
            for kind in PROMPT_KINDS
        }
    # count by how many objects the caption asks for: where the misses are
    by_n: dict[str, list[int]] = {}
    for r in rows:
        if "count_asked" in r:
            ok_n = by_n.setdefault(str(r["count_asked"]), [0, 0])
            ok_n[0] += int(bool(r["count"]))
            ok_n[1] += 1
    out["count_by_n"] = {k: {"ok": v[0], "n": v[1]} for k, v in sorted(by_n.items())}
    perm = [r["permanence"] for r in rows if "permanence" in r]
    out["occluded_rate"] = float(np.mean([p["occluded"] for p in perm])) if perm else None
    kinds = [permanence_miss(p) for p in perm]
    out["permanence_misses"] = {k: kinds.count(k) for k in MISS_KINDS} if perm else None
    phys = [r["physics"] for r in rows if "physics" in r]
    out["physics_untracked"] = sum(p["rms"] is None for p in phys)
    out["physics_rms"] = float(np.median([_rms(p) for p in phys])) if phys else None
    for k in ("arc_rms", "gravity", "restitution"):
        vals = [p[k] for p in phys if p.get(k) is not None]
        out[f"physics_{k}"] = float(np.median(vals)) if vals else None
    cam = [r for r in rows if "cameo_error" in r]
    if cam:
        out["cameo_error"] = float(np.mean([r["cameo_error"] for r in cam]))
        out["cameo_chance_error"] = float(np.mean([r["cameo_chance_error"] for r in cam]))
    return out


def physics_ratio(
    rows_gen: list[dict], rows_sim: list[dict], boot: int = 2000, seed: int = 0
) -> tuple[float | None, tuple[float, float] | None]:
    """The generated clips' median rms off the world's trajectory over the simulator's for
    the same clips (its clips through the same analysis: the pixel grid's own noise), and a
    95 % bootstrap interval of that ratio over the clips (pairs resampled together).
    Untracked generated objects count as infinitely far off. (None, None) without clips."""
    pairs = [
        (_rms(g["physics"]), _rms(s["physics"]))
        for g, s in zip(rows_gen, rows_sim, strict=True)
        if "physics" in g and "physics" in s and s["physics"]["rms"] is not None
    ]
    if not pairs:
        return None, None
    g, s = (np.array(v) for v in zip(*pairs, strict=True))
    if np.median(s) <= 0:
        return None, None
    ratio = float(np.median(g) / np.median(s))
    idx = np.random.default_rng(seed).integers(0, len(g), (boot, len(g)))
    draws = np.sort(np.median(g[idx], axis=1) / np.median(s[idx], axis=1))
    lo = draws[int(0.025 * boot)]
    hi = draws[min(boot - 1, int(np.ceil(0.975 * boot)) - 1)]
    return ratio, (float(lo), float(hi))

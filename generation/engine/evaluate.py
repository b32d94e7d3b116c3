"""Evaluation by image analysis of generated clips on held-out prompts.

For every held-out clip of the world (held-out colour x shape pairs, held-out seeds) the
engine generates a clip from the caption (and the cameo reference where there is one); the
same metrics run on the simulator's own clip as the ceiling.

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
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from .analysis import ClipAnalysis, cameo_error, fit_ballistic, permanence
from .world import Clip, WorldConfig, eval_seed, heldout_clips, make_clip, make_sprite

TARGETS = {
    "color": 0.90,
    "shape": 0.80,
    "count": 0.80,
    "permanence": 0.80,
    "physics_rms_ratio": 2.0,
}
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


def evaluate_continuity(engine, n: int, batch: int = 8) -> dict:
    cfg = engine.config
    wcfg = WorldConfig(frames=cfg.frames, height=cfg.height, width=cfg.width)
    pairs = continuation_clips(n, wcfg)
    from .interface import GenerationRequest

    errs: dict[str, list] = {"context": [], "no_context": []}
    for key in errs:
        reqs = [
            GenerationRequest(
                c.caption,
                seed=c.seed,
                frames=cfg.frames,
                context_frames=ctx if key == "context" else None,
            )
            for ctx, c in pairs
        ]
        frames = []
        for s in range(0, len(reqs), batch):
            frames += [g.frames for g in engine.generate(reqs[s : s + batch])]
        errs[key] = [continuity_error(f, c) for f, (_, c) in zip(frames, pairs, strict=True)]
    out: dict = {"n": n, "tolerance_px": CONTINUITY_PX}
    for key, vals in errs.items():
        vals = [v for v in vals if v is not None]
        out[key] = float(np.mean([v <= CONTINUITY_PX for v in vals])) if vals else None
        finite = [v for v in vals if np.isfinite(v)]
        out[f"{key}_median_px"] = float(np.median(finite)) if finite else None
    return out


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


def evaluate_engine(
    engine,
    n: int = 48,
    out_dir: str | Path | None = None,
    batch: int = 8,
    cameo_every: int = 6,
    progress: bool = True,
    log=print,
    continuity_n: int | None = None,
    start: int = 0,
    only: str | None = None,
) -> dict:
    """Generate the held-out set with `engine`, score it and the simulator; write
    `report.json` and `report.png` into `out_dir` when given. `start` scores the clips
    start .. start + n - 1 of the held-out sequence instead of the first n. `only` keeps the
    clips of that slice of one kind (ONLY_KINDS: "wall", those behind the wall, the ones
    permanence is scored on; "cameo"), so a metric that rests on a fifth of the clips can be
    measured on many of them without generating the rest."""
    cfg = engine.config
    wcfg = WorldConfig(frames=cfg.frames, height=cfg.height, width=cfg.width)
    refs = heldout_clips(n, wcfg, cameo_every=cameo_every, start=start)
    if only is not None:
        if only not in ONLY_KINDS:
            raise ValueError(f"only must be one of {sorted(ONLY_KINDS)}, not {only!r}")
        refs = [c for c in refs if ONLY_KINDS[only](c)]
    from .interface import GenerationRequest

    reqs = [
        GenerationRequest(
            c.caption, seed=c.seed, frames=cfg.frames, cameo_images=list(c.reference_images)
        )
        for c in refs
    ]
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(reqs), desc="evaluate", mininterval=5)
    gen = []
    t0 = time.perf_counter()
    for s in range(0, len(reqs), batch):
        gen += [g.frames for g in engine.generate(reqs[s : s + batch])]
        if bar is not None:
            bar.update(len(reqs[s : s + batch]))
    if bar is not None:
        bar.close()
    gen_s = time.perf_counter() - t0
    cont = evaluate_continuity(engine, n // 3 if continuity_n is None else continuity_n, batch)
    rows_gen = [clip_metrics(f, c) for f, c in zip(gen, refs, strict=True)]
    rows_sim = [clip_metrics(c.frames, c) for c in refs]
    g, s = summarize(rows_gen), summarize(rows_sim)
    ratio = None
    if g["physics_rms"] is not None and s["physics_rms"]:
        ratio = g["physics_rms"] / s["physics_rms"]
    met = {
        "color": g["color"] is not None and g["color"] >= TARGETS["color"],
        "shape": g["shape"] is not None and g["shape"] >= TARGETS["shape"],
        "count": g["count"] is not None and g["count"] >= TARGETS["count"],
        "permanence": g["permanence"] is not None and g["permanence"] >= TARGETS["permanence"],
        "physics_rms_ratio": ratio is not None and ratio <= TARGETS["physics_rms_ratio"],
    }
    report = {
        "n": n,
        "start": start,
        "only": only,
        "clips": len(refs),
        "engine": getattr(engine, "name", "?"),
        "engine_info": getattr(engine, "info", {}),
        "sampler": {
            "steps": engine.steps,
            "method": engine.method,
            "text_scale": engine.text_scale,
            "cameo_scale": engine.cameo_scale,
            "shift": getattr(engine, "shift", 1.0),
            "guidance_interval": getattr(engine, "guidance_interval", None),
            "guide_scale": getattr(engine, "guide_scale", 0.0),
            "two_pass": getattr(engine, "two_pass", False),
        },
        "generation_seconds": round(gen_s, 2),
        "generated": g,
        "simulator": s,
        "continuity": cont,
        "physics_rms_ratio": ratio,
        "simulator_gravity": wcfg.gravity,
        "simulator_restitution": wcfg.restitution,
        "targets": TARGETS,
        "met": met,
        "per_clip": [
            {"generated": a, "simulator": b} for a, b in zip(rows_gen, rows_sim, strict=True)
        ],
    }
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "report.json").write_text(json.dumps(report, indent=2, default=_json))
        (out / "report.md").write_text(report_markdown(report))
        from .viz import save_grid

        k = min(12, len(refs))
        clips, caps, rf = [], [], []
        for i in range(k):
            clips += [gen[i], refs[i].frames]
            caps += [f"gen: {refs[i].caption}", "sim"]
            ref_img = refs[i].reference_images[0] if refs[i].reference_images else None
            rf += [ref_img, ref_img]
        save_grid(out / "report.png", clips, caps, rf, title="generated (odd rows) vs simulator")
        # the permanence misses, each beside the simulator's clip: what the numbers hide
        missed = [
            (i, permanence_miss(r["permanence"]))
            for i, r in enumerate(rows_gen)
            if "permanence" in r and not r["permanence"]["ok"]
        ][:8]
        if missed:
            clips, caps = [], []
            for i, kind in missed:
                clips += [gen[i], refs[i].frames]
                # the caption on the simulator's row: long labels are cut on the left
                caps += [f"generated: {kind.replace('_', ' ')}", refs[i].caption]
            save_grid(
                out / "permanence-misses.png",
                clips,
                caps,
                [None] * len(clips),
                title="permanence misses (first 8): generated (odd rows) vs simulator",
            )
        model = getattr(engine, "model", None)
        walls = [c for c in refs if ONLY_KINDS["wall"](c)][:4]
        if walls and getattr(model, "amodal_out", None) is not None:
            save_amodal(out / "amodal.png", model, engine.encoder, walls)
        log(f"wrote {out / 'report.json'} and {out / 'report.png'}")
    return report


def amodal_maps(model, encoder, clips: list[Clip], t: float = 0.5, seed: int = 0) -> np.ndarray:
    """What the model's amodal head (model.ModelConfig.amodal_head) says of each clip, noised
    to flow time `t`: the probability that an object covers each voxel, the wall ignored,
    float [n, T, H, W]. Behind the wall that is where the model keeps the hidden object."""
    import torch

    from .flow import frames_to_tensor

    x0 = frames_to_tensor(np.stack([c.frames for c in clips]))
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(seed))
    xt = (1 - t) * x0 + t * noise
    text, tmask, pooled = encoder.batch([c.caption for c in clips])
    L = model.cfg.max_text_tokens
    dtype = next(model.parameters()).dtype
    with torch.no_grad():
        _, _, logits = model(
            xt.to(dtype),
            torch.full((len(clips),), t, dtype=dtype),
            text[:, :L].to(dtype),
            tmask[:, :L],
            pooled.to(dtype),
            return_amodal=True,
        )
    return torch.sigmoid(logits.float()).numpy()


def save_amodal(path: str | Path, model, encoder, clips: list[Clip], t: float = 0.5) -> None:
    """Rows in pairs: a wall clip of the simulator, then the amodal head's map of it at flow
    time `t` (white: an object is there, as the head says; the wall's columns tinted grey)."""
    from .viz import save_grid
    from .world import wall_columns

    maps = amodal_maps(model, encoder, clips, t)
    rows, caps = [], []
    for c, m in zip(clips, maps, strict=True):
        img = np.repeat((m[..., None] * 255).round().astype(np.uint8), 3, axis=-1)
        wall = wall_columns(c.spec, WorldConfig(width=img.shape[2]))
        if wall is not None:
            img[:, :, wall] = np.maximum(img[:, :, wall], 60)
        rows += [c.frames, img]
        caps += [c.caption, f"amodal head at t = {t}"]
    save_grid(path, rows, caps, [None] * len(rows), title="where the model keeps the objects")


def report_markdown(rep: dict) -> str:
    """The evaluation table of the model card (docs/engine.md), from a report."""
    g, s, met = rep["generated"], rep["simulator"], rep["met"]

    def pct(v):
        return "–" if v is None else f"{100 * v:.0f} %"

    def rate(key):  # the rate and its 95 % interval over the clips
        ci = g.get(f"{key}_ci95")
        if g[key] is None or not ci:
            return pct(g[key])
        return f"{pct(g[key])} ({100 * ci[0]:.0f}–{100 * ci[1]:.0f})"

    def num(v, nd=2):
        return "–" if v is None else f"{v:.{nd}f}"

    def mark(key):
        return "met" if met.get(key) else "not met"

    def by_n(d: dict) -> str:
        return " · ".join(f"{v['ok']}/{v['n']}" for v in d.values())

    count_rows = [
        ("object count", rate("count"), pct(s["count"]), "≥ 80 %", mark("count"), g["count_n"])
    ]
    if g.get("count_by_n"):  # where the misses are (reports before it was measured lack it)
        count_rows.append(
            (
                f"object count, by objects asked ({' / '.join(g['count_by_n'])})",
                by_n(g["count_by_n"]),
                by_n(s.get("count_by_n") or {}),
                "",
                "",
                g["count_n"],
            )
        )
    perm_rows = []
    if g.get("permanence_misses"):  # reports before it was measured lack it
        pm, sm = g["permanence_misses"], s.get("permanence_misses") or {}

        def misses(d: dict) -> str:
            return " · ".join(str(d.get(k, "–")) for k in MISS_KINDS)

        perm_rows.append(
            (
                "permanence misses: never hidden / not back / off track",
                misses(pm),
                misses(sm),
                "",
                "",
                g["permanence_n"],
            )
        )
    rows = [
        (
            "colour adherence",
            rate("color"),
            pct(s["color"]),
            "≥ 90 %",
            mark("color"),
            g["color_n"],
        ),
        ("shape", rate("shape"), pct(s["shape"]), "≥ 80 %", mark("shape"), g["shape_n"]),
        *count_rows,
        (
            "object permanence",
            rate("permanence"),
            pct(s["permanence"]),
            "≥ 80 %",
            mark("permanence"),
            g["permanence_n"],
        ),
        *perm_rows,
        (
            "physics: arc fit rms (px)",
            num(g["physics_rms"]),
            num(s["physics_rms"]),
            "≤ 2× simulator",
            f"{num(rep['physics_rms_ratio'], 1)}×, {mark('physics_rms_ratio')}",
            g["physics_n"],
        ),
        (
            "physics: fitted gravity (px/frame²)",
            num(g["physics_gravity"], 3),
            num(s["physics_gravity"], 3),
            f"{rep['simulator_gravity']} in the simulator",
            "",
            g["physics_n"],
        ),
        (
            "physics: restitution",
            num(g["physics_restitution"]),
            num(s["physics_restitution"]),
            f"{rep['simulator_restitution']} in the simulator",
            "",
            g["physics_n"],
        ),
        ("cameo fidelity", pct(g["cameo"]), pct(s["cameo"]), "", "", g["cameo_n"]),
    ]
    lines = [
        "| metric | generated (95 % interval) | simulator (ceiling) | target | | clips |",
        "|---|---:|---:|---|---|---:|",
    ]
    lines += [f"| {a} | {b} | {c} | {d} | {e} | {f} |" for a, b, c, d, e, f in rows]
    if "cameo_error" in g:
        lines.append(
            f"| cameo sprite error (chance) | {num(g['cameo_error'])} "
            f"({num(g['cameo_chance_error'])}) | {num(s['cameo_error'])} | < 0.15 | | "
            f"{g['cameo_n']} |"
        )
    cont = rep.get("continuity")
    if cont:
        lines.append(
            f"| remix continuity, with / without context (median px) | {pct(cont['context'])} "
            f"/ {pct(cont['no_context'])} ({num(cont['context_median_px'], 1)} / "
            f"{num(cont['no_context_median_px'], 1)}) | 100 % | | | {cont['n']} |"
        )
    return "\n".join(lines) + "\n"


def _json(o):
    if isinstance(o, np.generic):
        return o.item()
    raise TypeError(type(o))


def add_arguments(parser) -> None:
    parser.add_argument(
        "--weights",
        default="default",
        help="weights file, 'default' for the shipped one, 'random' for tiny",
    )
    parser.add_argument("--n", type=int, default=48)
    parser.add_argument(
        "--start",
        type=int,
        default=0,
        help="first held-out clip to score (a slice no earlier choice has seen)",
    )
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--method", default=None, choices=["euler", "heun"])
    parser.add_argument("--text-scale", type=float, default=None)
    parser.add_argument("--cameo-scale", type=float, default=None)
    parser.add_argument("--shift", type=float, default=None, help="time-grid shift (SD3 style)")
    parser.add_argument(
        "--guidance-interval",
        type=float,
        nargs=2,
        default=None,
        metavar=("LO", "HI"),
        help="apply guidance only for flow times in [LO, HI]",
    )
    parser.add_argument(
        "--guide-weights", default=None, help="a weaker checkpoint for autoguidance"
    )
    parser.add_argument(
        "--guide-scale", type=float, default=None, help="autoguidance scale (0 = off)"
    )
    parser.add_argument(
        "--two-pass",
        default=None,
        choices=["on", "off"],
        help="continue each clip from its own first frames (sampler.sample two_pass)",
    )
    parser.add_argument(
        "--only",
        default=None,
        choices=sorted(ONLY_KINDS),
        help="generate and score only the slice's clips of this kind (wall: permanence)",
    )
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument(
        "--continuity-n", type=int, default=None, help="continuation clips (default n/3)"
    )
    parser.add_argument("--out", default=".data/engine-eval")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--device", default="cpu")


def run_from_args(args, log=print) -> dict:
    import torch

    from .interface import get_engine

    if args.threads:
        torch.set_num_threads(args.threads)
    opts = {"device": args.device}
    keys = ("steps", "method", "text_scale", "cameo_scale", "shift", "guidance_interval")
    for k in keys + ("guide_weights", "guide_scale"):
        if getattr(args, k) is not None:
            opts[k] = getattr(args, k)
    if getattr(args, "two_pass", None) is not None:
        opts["two_pass"] = {"on": True, "off": False}[args.two_pass]
    if args.weights == "random":
        engine = get_engine("riff-world", weights=None, config="tiny", **opts)
    else:
        engine = get_engine("riff-world", weights=args.weights, **opts)
    rep = evaluate_engine(
        engine,
        n=args.n,
        out_dir=args.out,
        batch=args.batch,
        log=log,
        continuity_n=getattr(args, "continuity_n", None),
        start=getattr(args, "start", 0),
        only=getattr(args, "only", None),
    )
    brief = {
        k: rep["generated"][k]
        for k in (
            "color",
            "shape",
            "count",
            "permanence",
            "cameo",
            "physics_rms",
            "physics_gravity",
        )
    }
    log(
        json.dumps(
            {
                "generated": brief,
                "physics_rms_ratio": rep["physics_rms_ratio"],
                "continuity": rep["continuity"],
                "met": rep["met"],
            },
            indent=1,
        )
    )
    return rep


def main(argv=None) -> None:
    import argparse

    p = argparse.ArgumentParser(description="Evaluate the riff-world engine.")
    add_arguments(p)
    run_from_args(p.parse_args(argv))


if __name__ == "__main__":
    main()

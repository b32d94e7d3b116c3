"""The evaluation driver: generate the held-out set with an engine, score it beside the
simulator's own clips (the ceiling), write the report (`manage.py evaluate_engine`).

For every held-out clip of the world (held-out colour x shape pairs, held-out seeds) the
engine generates a clip from the caption (and the cameo reference where there is one); the
same metrics (metrics.py) run on the simulator's own clip. `--card REPORT.json` instead
rewrites the model card's table from a report (report.py) and generates nothing.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from ..world import Clip, WorldConfig, heldout_clips
from .metrics import (
    CONTINUITY_PX,
    ONLY_KINDS,
    PROMPT_KINDS,
    clip_metrics,
    continuation_clips,
    continuity_error,
    permanence_miss,
    physics_ratio,
    prompt_kind,
    summarize,
)
from .report import report_markdown, update_card
from .targets import TARGETS, targets_met, verdicts

# the model card whose evaluation table `--card` rewrites (relative to the working directory,
# as manage.py runs from the repository root)
CARD_FILE = "docs/engine.md"


def evaluate_continuity(engine, n: int, batch: int = 8, start: int = 0) -> dict:
    """Continuation clips start .. start + n - 1 (metrics.continuation_clips), generated with
    and without their context frames."""
    cfg = engine.config
    wcfg = WorldConfig(frames=cfg.frames, height=cfg.height, width=cfg.width)
    pairs = continuation_clips(n, wcfg, start=start)
    from ..backends import GenerationRequest

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
    out: dict = {"n": n, "start": start, "tolerance_px": CONTINUITY_PX}
    for key, vals in errs.items():
        vals = [v for v in vals if v is not None]
        out[key] = float(np.mean([v <= CONTINUITY_PX for v in vals])) if vals else None
        finite = [v for v in vals if np.isfinite(v)]
        out[f"{key}_median_px"] = float(np.median(finite)) if finite else None
    kinds = [prompt_kind(c) for _, c in pairs]
    out["by_prompt"] = {}
    for kind in PROMPT_KINDS:
        vals = [v for v, k in zip(errs["context"], kinds, strict=True) if k == kind]
        vals = [v for v in vals if v is not None]
        out["by_prompt"][kind] = {
            "n": kinds.count(kind),
            "context": float(np.mean([v <= CONTINUITY_PX for v in vals])) if vals else None,
        }
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
    start .. start + n - 1 of the held-out sequence instead of the first n, and the
    continuation clips from index `start` on (metrics.continuation_clips). `only` keeps the
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
    from ..backends import GenerationRequest

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
    n_cont = n // 3 if continuity_n is None else continuity_n
    cont = evaluate_continuity(engine, n_cont, batch, start=start)
    t1 = time.perf_counter()
    rows_gen = [clip_metrics(f, c) for f, c in zip(gen, refs, strict=True)]
    rows_sim = [clip_metrics(c.frames, c) for c in refs]
    g, s = summarize(rows_gen), summarize(rows_sim)
    ratio, ratio_ci = physics_ratio(rows_gen, rows_sim)
    judged = {"generated": g, "physics_rms_ratio": ratio, "physics_rms_ratio_ci95": ratio_ci}
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
        "scoring_seconds": round(time.perf_counter() - t1, 2),
        "generated": g,
        "simulator": s,
        "continuity": cont,
        "physics_rms_ratio": ratio,
        "physics_rms_ratio_ci95": ratio_ci,
        "simulator_gravity": wcfg.gravity,
        "simulator_restitution": wcfg.restitution,
        "targets": dict(TARGETS),
        "verdicts": verdicts(judged),
        "met": targets_met(judged),
        "per_clip": [
            {"generated": a, "simulator": b} for a, b in zip(rows_gen, rows_sim, strict=True)
        ],
    }
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "report.json").write_text(json.dumps(report, indent=2, default=_json))
        (out / "report.md").write_text(report_markdown(report))
        from ..viz import save_grid

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

    from ..flow import frames_to_tensor

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
    from ..viz import save_grid
    from ..world import wall_columns

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
        help="first held-out clip (and continuation clip) to score: a slice no earlier "
        "choice has seen",
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
    parser.add_argument(
        "--card",
        default=None,
        metavar="REPORT_JSON",
        help="generate nothing: rewrite the model card's evaluation table from this report "
        "(e.g. docs/engine-eval-stage16.json)",
    )
    parser.add_argument(
        "--card-file", default=CARD_FILE, help=f"the card --card rewrites (default {CARD_FILE})"
    )


def run_from_args(args, log=print) -> dict:
    if getattr(args, "card", None):
        changed = update_card(args.card_file, args.card)
        log(f"{'rewrote' if changed else 'unchanged:'} the evaluation table of {args.card_file}")
        return {"card": args.card_file, "changed": changed}
    import torch

    from ..backends import get_engine

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
            "physics",
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
                "physics_rms_ratio_ci95": rep["physics_rms_ratio_ci95"],
                "continuity": rep["continuity"],
                "verdicts": rep["verdicts"],
            },
            indent=1,
        )
    )
    return rep


def main(argv=None) -> None:
    import argparse

    p = argparse.ArgumentParser(
        prog="python -m generation.engine.evaluation", description="Evaluate the riff-world engine."
    )
    add_arguments(p)
    run_from_args(p.parse_args(argv))

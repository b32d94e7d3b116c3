"""How the evaluator decides (issue #33): verdicts on intervals, held-out and seen prompts
apart, continuation clips per slice, the world's trajectory it compares against, the training
seeds kept off the evaluation's, and the bench's matmul and forward timed in turns."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors import safe_open

from generation.engine.evaluation.analysis import visible_pixels
from generation.engine.evaluation.metrics import (
    clip_metrics,
    continuation_clips,
    prompt_kind,
    summarize,
)
from generation.engine.evaluation.report import report_markdown
from generation.engine.evaluation.targets import is_met, verdict, verdicts
from generation.engine.world import (
    EVAL_SEED_BASE,
    HELD_OUT_PAIRS,
    WorldConfig,
    heldout_clips,
    make_clip,
    shape_mask,
    simulate,
    simulate_alone,
    start_ranges,
)


def test_a_target_is_met_only_when_the_interval_clears_it():
    assert verdict("color", (0.91, 0.96)) == "met"
    assert verdict("color", (0.90, 0.96)) == "met"  # the bound on the target clears it
    assert verdict("color", (0.85, 0.95)) == "undecided"
    assert verdict("color", (0.70, 0.89)) == "not met"
    assert verdict("color", None) == "undecided"  # no clips: nothing decided, nothing met
    assert not is_met("color", None) and is_met("color", (0.91, 0.96))
    # the physics ratio is a ceiling
    assert verdict("physics_rms_ratio", (1.2, 1.9)) == "met"
    assert verdict("physics_rms_ratio", (1.5, 2.5)) == "undecided"
    assert verdict("physics_rms_ratio", (2.1, float("inf"))) == "not met"
    assert verdict("color", (0.85, 0.95), {"color": 0.8}) == "met"
    rep = {
        "generated": {
            "color_ci95": (0.91, 0.96),
            "shape_ci95": (0.76, 0.84),
            "count_ci95": (0.5, 0.7),
            "permanence_ci95": None,
        },
        "physics_rms_ratio_ci95": (2.5, 3.1),
    }
    assert verdicts(rep) == {
        "color": "met",
        "shape": "undecided",
        "count": "not met",
        "permanence": "undecided",
        "physics_rms_ratio": "not met",
    }


def test_prompts_are_held_out_or_seen_by_their_colour_shape_pairs():
    clips = heldout_clips(24, cameo_every=6)
    for i, c in enumerate(clips):
        pairs = {(o.color, o.shape) for o in c.spec.objects if o.pattern is None}
        assert prompt_kind(c) == ("heldout" if pairs & HELD_OUT_PAIRS else "seen"), c.caption
        if i % 2 == 0:  # drawn with split="heldout": a held-out pair comes first
            assert prompt_kind(c) == "heldout"
    kinds = [prompt_kind(c) for c in clips]
    assert kinds.count("seen") >= 6  # the odd clips are mostly training-distribution prompts
    rows = [clip_metrics(c.frames, c) for c in clips]
    assert [r["prompt"] for r in rows] == kinds
    s = summarize(rows)
    for kind in ("heldout", "seen"):
        part = summarize([r for r in rows if r["prompt"] == kind])
        assert s["by_prompt"][kind]["clips"] == kinds.count(kind)
        for key in ("color", "shape", "count", "permanence", "physics"):
            assert s["by_prompt"][kind][key] == part[key]
            assert s["by_prompt"][kind][f"{key}_ci95"] == part[f"{key}_ci95"]


def test_continuation_clips_follow_the_slice():
    cfg = WorldConfig()
    whole = continuation_clips(7, cfg)
    later = continuation_clips(4, cfg, start=3)
    for (ctx_a, a), (ctx_b, b) in zip(whole[3:], later, strict=True):
        assert (a.seed, a.caption) == (b.seed, b.caption)
        assert np.array_equal(ctx_a, ctx_b) and np.array_equal(a.frames, b.frames)
        assert a.visible_fraction.shape == (len(a.spec.objects), cfg.frames)
    assert {c.seed for _, c in whole[:3]}.isdisjoint(c.seed for _, c in later)


def test_the_world_answers_for_one_object_as_simulate_does():
    cfg = WorldConfig()
    n = 0
    for seed in range(300):
        c = make_clip(seed)
        if len(c.spec.objects) != 1:
            continue
        o = c.spec.objects[0]
        alone = simulate_alone([o.x], [o.y], [o.vx], [o.vy], o.radius(cfg), cfg)[0]
        assert np.array_equal(alone, simulate(c.spec, cfg)[0])  # bit for bit
        ranges = start_ranges(c.spec.motion, o.radius(cfg), cfg)
        if c.spec.occluder_x is None:  # a wall clip draws x beside its wall
            assert ranges["x"][0] <= o.x <= ranges["x"][1]
        assert ranges["y"][0] <= o.y <= ranges["y"][1]
        assert ranges["speed_x"][0] <= abs(o.vx) <= ranges["speed_x"][1]
        assert ranges["vy"][0] <= o.vy <= ranges["vy"][1]
        n += 1
    assert n > 100
    with pytest.raises(ValueError):
        start_ranges("teleports", 3.0, cfg)


def test_visible_pixels_are_the_pixels_the_renderer_draws():
    gen = np.random.default_rng(0)
    wall = np.zeros(32, bool)
    wall[11:21] = True
    for i in range(600):
        shape, r = ("ball", "square", "triangle")[i % 3], (3.0, 5.0)[i % 2]
        cx, cy = gen.uniform(r, 32 - r, 2)
        hidden = wall if i % 4 else np.zeros(32, bool)
        m = shape_mask(shape, cx, cy, r, 32, 32) & ~hidden[None]
        n, x, y = visible_pixels(shape, np.array([cx]), np.array([cy]), r, 32, hidden)
        assert n[0] == m.sum()
        if m.any():
            ys, xs = np.nonzero(m)
            assert np.isclose(x[0], xs.mean() + 0.5) and np.isclose(y[0], ys.mean() + 0.5)
        else:
            assert np.isnan(x[0]) and np.isnan(y[0])


def test_the_training_pool_refuses_evaluation_seeds():
    from generation.engine.training.data import ClipPool, EvalSeedError, check_training_seeds

    check_training_seeds(EVAL_SEED_BASE - 10, 10)
    with pytest.raises(EvalSeedError, match="evaluation"):
        check_training_seeds(EVAL_SEED_BASE - 10, 11)
    with pytest.raises(EvalSeedError):  # --seed 10 starts the pool at 10**9
        ClipPool(2, WorldConfig(), 0.0, first_seed=10 * 10**8, progress=False)
    pool = ClipPool(2, WorldConfig(), 0.0, first_seed=EVAL_SEED_BASE - 3, progress=False)
    assert pool.seed_range == (EVAL_SEED_BASE - 3, EVAL_SEED_BASE - 2)
    pool.refresh(1)
    with pytest.raises(EvalSeedError):  # a refresh would draw seed 10**9
        pool.refresh(1)


def test_exported_weights_record_the_seeds_they_were_trained_on(tmp_path, monkeypatch):
    from generation.engine.training import data as data_mod
    from generation.engine.training.checkpoints import export_weights
    from generation.engine.training.config import TrainConfig
    from generation.engine.training.loop import train

    seen: list[int] = []
    fill = data_mod.ClipPool._fill

    def recording(self, i):
        seen.append(self.next_seed)
        fill(self, i)

    monkeypatch.setattr(data_mod.ClipPool, "_fill", recording)
    tc = TrainConfig(
        model="tiny",
        batch=2,
        pool_size=6,
        text_encoder="hash",
        ckpt_every_s=1e9,
        sample_steps=1,
        steps=3,
        refresh_every=1,
        refresh_count=2,
        seed=3,
    )
    run = tmp_path / "run"
    train(run, tc, threads=1, progress=False, log=lambda *_: None)
    tc.steps = 5  # resumed: the pool starts again further on
    train(run, tc, threads=1, progress=False, log=lambda *_: None)
    out = export_weights(run, tmp_path / "w.safetensors")
    with safe_open(str(out), "pt") as f:
        seeds = json.loads(f.metadata()["training_seeds"])
    assert seeds["eval_seed_base"] == EVAL_SEED_BASE and seeds["run"] == "run"
    assert seeds["first"] == 3 * 10**8 and seeds["first"] <= min(seen)
    assert max(seen) <= seeds["last"] < EVAL_SEED_BASE
    assert "parent" not in seeds

    # A run started from those weights records them as its parent; from a file older than
    # the record (no `training_seeds`), it says the parent's seeds are unrecorded.
    child = tmp_path / "child"
    tc.steps = 2
    train(child, tc, threads=1, progress=False, log=lambda *_: None, init_from=out)
    with safe_open(str(export_weights(child, tmp_path / "c.safetensors")), "pt") as f:
        lineage = json.loads(f.metadata()["training_seeds"])
    assert lineage["run"] == "child" and lineage["parent"] == seeds
    from safetensors.torch import load_file, save_file

    with safe_open(str(out), "pt") as f:
        old_meta = {k: v for k, v in f.metadata().items() if k != "training_seeds"}
    save_file(load_file(str(out)), str(tmp_path / "old.safetensors"), metadata=old_meta)
    orphan = tmp_path / "orphan"
    train(
        orphan,
        tc,
        threads=1,
        progress=False,
        log=lambda *_: None,
        init_from=tmp_path / "old.safetensors",
    )
    with safe_open(str(export_weights(orphan, tmp_path / "o.safetensors")), "pt") as f:
        assert json.loads(f.metadata()["training_seeds"])["parent"] == {
            "unrecorded": "old.safetensors"
        }


def test_the_bench_times_matmul_and_forward_in_turns(monkeypatch):
    from config.devtools.bench import engine as bench
    from generation.engine.model import CONFIGS, SpaceTimeDiT

    calls: list[str] = []
    model = SpaceTimeDiT(CONFIGS["tiny"]).eval()
    mm = torch.mm

    class Logged(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inner, self.cfg = model, model.cfg

        def forward(self, *args):
            calls.append("forward")
            return self.inner(*args)

    def logged_mm(a, b):
        calls.append("mm")
        return mm(a, b)

    monkeypatch.setattr(torch, "mm", logged_mm)
    stats = bench.forward_stats(Logged(), batch=1, reps=4, matmul_n=32)
    rounds = "".join("m" if c == "mm" else "f" for c in calls)
    # the flop count and the warm-ups, then four rounds of a matmul block and a forward
    block = "m" * bench.MATMUL_PER_ROUND
    assert rounds == "ffm" + (block + "f") * 4
    ratios = stats["fraction_of_matmul_per_round"]
    assert stats["rounds"] == len(ratios) == 4
    assert stats["fraction_of_matmul"] == float(np.median(ratios))
    assert stats["matmul_gflops"] > 0 and stats["achieved_gflops"] > 0


def test_a_new_report_shows_prompts_apart_and_its_verdicts():
    clips = heldout_clips(40, cameo_every=6)
    rows = [clip_metrics(c.frames, c) for c in clips]
    s = summarize(rows)
    rep = {
        "generated": s,
        "simulator": s,
        "physics_rms_ratio": 1.0,
        "physics_rms_ratio_ci95": (0.8, 1.3),
        "simulator_gravity": 0.25,
        "simulator_restitution": 0.8,
    }
    md = report_markdown(rep)
    lines = md.splitlines()
    i = next(k for k, ln in enumerate(lines) if ln.startswith("| colour adherence |"))
    assert lines[i].endswith(f"| ≥ 90 % | met | {s['color_n']} |")
    held, seen = s["by_prompt"]["heldout"], s["by_prompt"]["seen"]
    assert lines[i + 1].startswith("| … held-out · seen prompts | 100 % (")
    assert lines[i + 1].endswith(f"| {held['color_n']} · {seen['color_n']} |")
    assert "| physics: on the world's trajectory (rms ≤ 0.65 px, bounces ±1 frame) | 100 % (" in md
    assert "| ≤ 2× simulator | 1.0 (0.8–1.3)×, met |" in md
    assert "permanence misses: never hidden / not back / wrong time / off track" in md
    assert "arc fit" not in md


def test_the_ablation_difference_interval_is_newcombes():
    from generation.engine.evaluation.metrics import difference_interval

    # Newcombe (1998), Statistics in Medicine 17, table II, example (a): 56/70 vs 48/80.
    lower, upper = difference_interval(56, 70, 48, 80)
    assert (round(lower, 4), round(upper, 4)) == (0.0524, 0.3339)
    assert difference_interval(1, 0, 1, 2) is None
    low, high = difference_interval(10, 20, 10, 20)
    assert low < 0 < high and abs(low + high) < 1e-9

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors import safe_open

import generation.engine.training.cli as cli_mod
import generation.engine.training.loop as train_mod
from generation.engine.backends import GenerationRequest, get_engine
from generation.engine.training.checkpoints import export_weights, read_checkpoint
from generation.engine.training.config import TrainConfig
from generation.engine.training.data import ClipPool, world_config
from generation.engine.training.loop import train
from generation.engine.world import WorldConfig, make_clip


def tiny_run(**overrides) -> TrainConfig:
    """A training config that runs in milliseconds per step (no checkpoint until the end)."""
    base = {
        "model": "tiny",
        "batch": 4,
        "pool_size": 24,
        "text_encoder": "hash",
        "ckpt_every_s": 1e9,
        "sample_steps": 1,
    }
    return TrainConfig(**{**base, **overrides})


def train_from(weights, run_dir, log=lambda *_: None, **overrides) -> dict:
    """A tiny run started from exported `weights` (`--init-from`)."""
    tc = tiny_run(**overrides)
    return train(run_dir, tc, threads=1, progress=False, log=log, init_from=weights)


def test_train_resume_export_and_load(tmp_path):
    run = tmp_path / "run"
    tc = tiny_run(steps=3, refresh_every=2, refresh_count=4)
    first = train(run, tc, threads=1, progress=False, log=lambda *_: None)
    assert first["step"] == 3
    for name in ("ckpt.safetensors", "optim.pt", "loss.csv", "loss.png", "samples.png"):
        assert (run / name).exists(), name
    tc.steps, tc.p_context = 5, 0.5  # the batch mix may change on resume, the model not
    tc.model = "small"
    second = train(run, tc, threads=1, progress=False, log=lambda *_: None)
    assert second["step"] == 5
    saved = json.loads((run / "config.json").read_text())
    assert saved["train"]["p_context"] == 0.5 and saved["model"]["hidden"] == 32
    assert len((run / "loss.csv").read_text().splitlines()) == 1 + 5

    out = export_weights(run, tmp_path / "w.safetensors")
    with safe_open(str(out), "pt") as f:
        meta = f.metadata()
        assert json.loads(meta["config"])["hidden"] == 32
        assert meta["step"] == "5" and meta["total_steps"] == "5"
        assert meta["text_encoder"] == "hash"
        assert all(f.get_tensor(k).dtype.is_floating_point for k in f.keys())  # noqa: SIM118
    # a new run can start from exported weights: same outputs before its first step
    again = train_from(out, tmp_path / "again", steps=1, lr=0.0)
    assert again["step"] == 1
    with (
        safe_open(str(out), "pt") as f,
        safe_open(str(tmp_path / "again" / "ckpt.safetensors"), "pt") as g,
    ):
        k = "out.weight"
        assert torch.allclose(f.get_tensor(k).float(), g.get_tensor(f"model.{k}"))
    # its export counts the steps behind the weights it started from, and so does the engine
    child = export_weights(tmp_path / "again", tmp_path / "child.safetensors")
    with safe_open(str(child), "pt") as f:
        assert (f.metadata()["step"], f.metadata()["total_steps"]) == ("1", "6")
    child_clip = get_engine("riff-world", weights=str(child), steps=1).generate(
        [GenerationRequest("a red ball", seed=1)]
    )[0]
    assert child_clip.metadata["model_step"] == 6
    engine = get_engine("riff-world", weights=str(out), steps=2)
    clip = engine.generate([GenerationRequest("a red ball", seed=1)])[0]
    assert clip.frames.shape == (16, 32, 32, 3) and clip.metadata["model_step"] == 5
    assert np.isfinite(clip.frames).all()


def test_weights_carry_the_sampler_settings_they_were_measured_with(tmp_path):
    run = tmp_path / "run"
    train(run, tiny_run(steps=1), threads=1, progress=False, log=lambda *_: None)
    lineage = {"source_run": "a+b", "sampler": json.dumps({"two_pass": True})}
    asks = export_weights(run, tmp_path / "asks.st", extra_meta=lineage)
    plain = export_weights(run, tmp_path / "plain.st")
    with safe_open(str(asks), "pt") as f:
        assert f.metadata()["source_run"] == "a+b"
    assert get_engine("riff-world", weights=str(asks), steps=1).two_pass is True
    assert get_engine("riff-world", weights=str(plain), steps=1).two_pass is False
    # an option given by the operator (RIFF_SAMPLER_TWO_PASS) wins over the file's
    assert get_engine("riff-world", weights=str(asks), steps=1, two_pass=False).two_pass is False
    clip = get_engine("riff-world", weights=str(asks), steps=1).generate(
        [GenerationRequest("a red ball", seed=1)]
    )[0]
    assert clip.metadata["two_pass"] is True and clip.frames.shape == (16, 32, 32, 3)
    # a file asking for a setting this code does not know is refused, not half-honoured
    bad_files = (
        ({"two_pass": True, "cfg_rescale": 0.7}, "cfg_rescale"),
        ([1], "object"),
        ({"two_pass": "yes"}, "true or false"),
    )
    for i, (bad, match) in enumerate(bad_files):
        meta = {"sampler": json.dumps(bad)}
        path = export_weights(run, tmp_path / f"bad{i}.st", extra_meta=meta)
        with pytest.raises(ValueError, match=match):
            get_engine("riff-world", weights=str(path), steps=1)


def grow_tiny_parent(tmp_path, **grow):
    """A 2-step tiny parent, a child run grown from its weights by `grow` (lr 0, one step);
    returns (parent weights, child weights, the child's log lines)."""
    parent_run = tmp_path / "parent"
    train(parent_run, tiny_run(steps=2), threads=1, progress=False, log=lambda *_: None)
    parent = export_weights(parent_run, tmp_path / "parent.safetensors")
    logs: list[str] = []
    train_from(parent, tmp_path / "grown", log=logs.append, steps=1, lr=0.0, **grow)
    return parent, export_weights(tmp_path / "grown", tmp_path / "child.safetensors"), logs


def assert_same_clip(parent, child):
    """The grown model starts as a no-op: the same clip as its parent's."""
    req = [GenerationRequest("a red ball", seed=3)]
    a = get_engine("riff-world", weights=str(parent), steps=2).generate(req)[0].frames
    b = get_engine("riff-world", weights=str(child), steps=2).generate(req)[0].frames
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 1  # fp16 export rounding


def test_init_from_can_grow_the_mlp_output_head(tmp_path):
    parent, child, logs = grow_tiny_parent(tmp_path, head_hidden=8)
    assert any(m.startswith("new parameters (fresh init): out_mlp.0.bias") for m in logs)
    with safe_open(str(child), "pt") as f:
        assert json.loads(f.metadata()["config"])["head_hidden"] == 8
        assert f.get_tensor("out_mlp.0.weight").shape == (8, 32)
        assert torch.count_nonzero(f.get_tensor("out_mlp.2.weight")) == 0
    assert_same_clip(parent, child)


def test_init_from_can_grow_the_depth_by_identity_blocks_and_never_shrink_it(tmp_path):
    parent, child, logs = grow_tiny_parent(tmp_path, depth=3)
    grown = next(m for m in logs if m.startswith("new parameters (fresh init): "))
    names = grown.split(": ", 1)[1].split(", ")
    assert names and all(n.startswith("blocks.2.") for n in names)  # only the new block
    with safe_open(str(child), "pt") as f:
        assert json.loads(f.metadata()["config"])["depth"] == 3
        assert torch.count_nonzero(f.get_tensor("blocks.2.ada.weight")) == 0
        assert torch.count_nonzero(f.get_tensor("blocks.2.cross.proj.weight")) == 0
    assert_same_clip(parent, child)

    with pytest.raises(ValueError, match="can only grow"):
        train_from(parent, tmp_path / "shallower", steps=1, depth=1)
    assert not (tmp_path / "shallower" / "ckpt.safetensors").exists()


def test_init_from_can_grow_the_sprite_pathway_and_train_it_alone(tmp_path):
    parent, child, logs = grow_tiny_parent(tmp_path, sprite_hidden=8)
    assert any(m.startswith("new parameters (fresh init): sprite_mlp.0.bias") for m in logs)
    with safe_open(str(child), "pt") as f:
        assert json.loads(f.metadata()["config"])["sprite_hidden"] == 8
        assert torch.count_nonzero(f.get_tensor("sprite_mlp.2.weight")) == 0
    assert_same_clip(parent, child)

    # --train-only sprite: cameo batches teach the pathway; every other weight stays put
    logs = []
    run = tmp_path / "sprite-only"
    train_from(
        parent,
        run,
        log=logs.append,
        steps=8,
        lr=1e-2,
        sprite_hidden=8,
        train_only="sprite",
        p_cameo=0.5,
        p_context=0.0,
        seed=3,
    )
    assert any(m.startswith("training sprite only: ") for m in logs)
    with safe_open(str(parent), "pt") as f, safe_open(str(run / "ckpt.safetensors"), "pt") as g:
        for k in f.keys():  # noqa: SIM118
            assert torch.equal(f.get_tensor(k).float(), g.get_tensor(f"model.{k}")), k
        assert torch.count_nonzero(g.get_tensor("model.sprite_mlp.2.weight")) > 0
    with pytest.raises(ValueError, match="no such parameters"):
        train_from(parent, tmp_path / "no-pathway", steps=1, train_only="sprite")


def test_cameo_clips_in_the_pool_carry_their_sprite_layout():
    pool = ClipPool(40, WorldConfig(), p_cameo=0.5, progress=False)
    cameo = np.flatnonzero(pool.has_ref)
    assert 5 <= len(cameo) <= 35
    assert pool.sprite_shows[cameo].any(axis=(1, 2, 3)).all()
    assert not pool.sprite_shows[~pool.has_ref].any()
    assert np.all(pool.sprite_box[cameo, :, 2] == 5.0)
    assert ClipPool(4, WorldConfig(), p_cameo=0.0, progress=False).sprite_shows.shape[0] == 0


def test_context_clips_continue_their_context_and_train_with_it(tmp_path, monkeypatch):
    pool = ClipPool(60, WorldConfig(), p_cameo=0.2, progress=False, p_context=0.4)
    ctx = np.flatnonzero(pool.has_ctx)
    assert 10 <= len(ctx) <= 40
    assert not (pool.has_ctx & pool.has_ref).any()  # cameo and context batches are separate
    assert not pool.ctx[~pool.has_ctx].any()
    # the context is the 4 frames just before the target: the last one is close to its first
    i = int(ctx[0])
    step = np.abs(pool.ctx[i, -1].astype(int) - pool.frames[i, 0]).mean()
    far = np.abs(pool.ctx[i, 0].astype(int) - pool.frames[i, -1]).mean()
    assert step < far
    # ...of an ordinary clip of the seed, simulated on: the context is its first frames
    clip = make_clip(i, WorldConfig(), split="train", extra_frames=4)
    assert np.array_equal(pool.ctx[i], clip.frames[:4])
    assert np.array_equal(pool.frames[i], clip.frames[4:])
    assert pool.captions[i] == clip.caption

    tc = tiny_run(steps=4, p_cameo=0.0, p_context=1.0)
    seen = []
    real = train_mod.flow_loss

    def spy(model, batch, **kw):
        seen.append(batch.context is not None and bool(batch.context_mask.all()))
        return real(model, batch, **kw)

    monkeypatch.setattr(train_mod, "flow_loss", spy)
    train(tmp_path / "ctx", tc, threads=1, progress=False, log=lambda *_: None)
    assert seen == [True] * 4


def test_lr_schedule_warms_up_then_is_constant_or_cosine_decays():
    const = TrainConfig(lr=4e-4, warmup=100, steps=1000)
    assert train_mod._lr(0, const) == pytest.approx(4e-6, rel=1e-12)
    assert train_mod._lr(49, const) == 4e-4 / 2
    assert train_mod._lr(99, const) == 4e-4
    assert train_mod._lr(999, const) == 4e-4  # no decay unless lr_end is set

    cos = TrainConfig(lr=4e-4, lr_end=4e-5, warmup=100, steps=1100)
    assert train_mod._lr(49, cos) == 4e-4 / 2  # same warm-up
    assert train_mod._lr(100, cos) == 4e-4
    assert abs(train_mod._lr(600, cos) - 2.2e-4) < 1e-12  # half way: the mean of the ends
    assert abs(train_mod._lr(1100, cos) - 4e-5) < 1e-12
    assert abs(train_mod._lr(5000, cos) - 4e-5) < 1e-12  # past the end it stays at lr_end
    lrs = [train_mod._lr(s, cos) for s in range(100, 1101, 50)]
    assert all(a > b for a, b in zip(lrs[:-1], lrs[1:], strict=True))


def test_resume_takes_the_lr_schedule_from_the_command_line(tmp_path):
    train(tmp_path, tiny_run(steps=2), progress=False, log=lambda *_: None)
    train(
        tmp_path,
        tiny_run(steps=3, lr=1e-3, lr_end=1e-5),
        progress=False,
        log=lambda *_: None,
    )
    saved = json.loads((tmp_path / "config.json").read_text())["train"]
    assert (saved["steps"], saved["lr"], saved["lr_end"]) == (3, 1e-3, 1e-5)


def test_p_wall_sets_the_share_of_wall_clips_and_follows_the_command_line(tmp_path):
    mc = train_mod.model_config(tiny_run())
    assert world_config(tiny_run(), mc).p_occluder == WorldConfig().p_occluder
    walls = {}
    for p in (0.0, 1.0):
        wcfg = world_config(tiny_run(p_wall=p), mc)
        assert (wcfg.p_occluder, wcfg.frames, wcfg.height) == (p, mc.frames, mc.height)
        pool = ClipPool(80, wcfg, p_cameo=0.0, progress=False)
        walls[p] = sum("wall" in c for c in pool.captions)
    # every sliding or bouncing clip (half of the motions) goes behind a wall, or none does
    assert walls[0.0] == 0 and 25 <= walls[1.0] <= 55

    train(tmp_path, tiny_run(steps=2, p_wall=0.6), progress=False, log=lambda *_: None)
    train(tmp_path, tiny_run(steps=3, p_wall=0.4), progress=False, log=lambda *_: None)
    assert json.loads((tmp_path / "config.json").read_text())["train"]["p_wall"] == 0.4


def test_ema_decay_comes_from_the_command_line_and_sets_how_far_the_average_lags(tmp_path):
    import argparse

    parser = argparse.ArgumentParser()
    cli_mod.add_arguments(parser)
    assert parser.parse_args([]).ema == TrainConfig.ema == 0.999
    assert parser.parse_args(["--ema", "0.9995"]).ema == 0.9995

    def lag(ema: float, out) -> float:
        train(out, tiny_run(steps=4, ema=ema), progress=False, log=lambda *_: None)
        t, _ = read_checkpoint(out / "ckpt.safetensors")
        keys = [k[6:] for k in t if k.startswith("model.")]
        return max(float((t[f"model.{k}"] - t[f"ema.{k}"]).abs().max()) for k in keys)

    assert lag(0.0, tmp_path / "none") == 0.0  # no averaging: the EMA is the model itself
    assert lag(0.999, tmp_path / "long") > 0.0
    # a resumed run takes the new decay, like the other schedule knobs
    train(tmp_path / "long", tiny_run(steps=5, ema=0.5), progress=False, log=lambda *_: None)
    assert json.loads((tmp_path / "long" / "config.json").read_text())["train"]["ema"] == 0.5


def test_fg_weight_weights_object_and_wall_voxels_and_follows_the_command_line(tmp_path):
    from generation.engine.text import TextEncoder
    from generation.engine.world import foreground_mask

    mc = train_mod.model_config(tiny_run())
    pool = ClipPool(12, world_config(tiny_run(p_wall=1.0), mc), 0.0, progress=False)
    enc = TextEncoder("hash", max_tokens=mc.max_text_tokens)
    idx = np.arange(12)
    assert pool.batch(idx, enc, mc.max_text_tokens, "cpu", refs=False).weight is None
    w = pool.batch(idx, enc, mc.max_text_tokens, "cpu", refs=False, fg_weight=3.0).weight
    assert w.shape == (12, 1, mc.frames, mc.height, mc.width)
    assert set(torch.unique(w).tolist()) == {1.0, 3.0}
    assert torch.equal(w[:, 0] == 3.0, torch.from_numpy(pool.fg))
    for i in idx:  # the pool's clip i is the world's clip for seed i
        clip = make_clip(int(i), pool.wcfg, split="train")
        assert np.array_equal(pool.fg[i], foreground_mask(clip.frames, clip.spec.background))
    assert pool.fg.any(axis=(1, 2, 3)).all()

    train(tmp_path, tiny_run(steps=2, fg_weight=4.0), progress=False, log=lambda *_: None)
    train(tmp_path, tiny_run(steps=3, fg_weight=2.0), progress=False, log=lambda *_: None)
    assert json.loads((tmp_path / "config.json").read_text())["train"]["fg_weight"] == 2.0

    import argparse

    parser = argparse.ArgumentParser()
    cli_mod.add_arguments(parser)
    assert parser.parse_args([]).fg_weight == 1.0
    assert parser.parse_args(["--fg-weight", "3"]).fg_weight == 3.0


def test_p_multi_sets_the_share_of_multi_object_clips_and_leaves_the_default_draw_alone(tmp_path):
    from generation.engine.world import heldout_clips, sample_spec

    mc = train_mod.model_config(tiny_run())
    assert world_config(tiny_run(), mc).p_multi is None

    def counts(p_multi) -> list[int]:
        wcfg = world_config(tiny_run(p_wall=0.0, p_multi=p_multi), mc)
        return [len(sample_spec(np.random.default_rng(s), wcfg).objects) for s in range(300)]

    assert set(counts(0.0)) == {1}
    all_multi = counts(1.0)
    assert set(all_multi) == {2, 3}
    assert 110 <= all_multi.count(3) <= 190  # two and three objects equally likely
    multi = sum(n > 1 for n in counts(0.75))
    assert 195 <= multi <= 255
    default = sum(n > 1 for n in counts(None))
    assert 120 <= default <= 180
    # the evaluation set is drawn with the default world, so its clips are what they were
    assert heldout_clips(1)[0].caption == "three large orange balls fly up and fall back"

    train(tmp_path, tiny_run(steps=2, p_multi=0.9), progress=False, log=lambda *_: None)
    train(tmp_path, tiny_run(steps=3, p_multi=0.7), progress=False, log=lambda *_: None)
    assert json.loads((tmp_path / "config.json").read_text())["train"]["p_multi"] == 0.7


def test_apart_reaches_the_training_world_and_follows_the_command_line_on_resume(tmp_path):
    mc = train_mod.model_config(tiny_run())
    assert world_config(tiny_run(), mc).apart is False
    assert world_config(tiny_run(apart=True), mc).apart is True
    train(tmp_path, tiny_run(steps=2, apart=True), progress=False, log=lambda *_: None)
    assert json.loads((tmp_path / "config.json").read_text())["train"]["apart"] is True
    train(tmp_path, tiny_run(steps=3), progress=False, log=lambda *_: None)
    assert json.loads((tmp_path / "config.json").read_text())["train"]["apart"] is False


def test_amodal_weight_grows_the_head_and_trains_it_through_the_trunk(tmp_path, monkeypatch):
    from generation.engine.world import amodal_mask

    parent, child, logs = grow_tiny_parent(tmp_path, amodal_weight=0.5)
    assert any(m == "new parameters (fresh init): amodal_out.bias, amodal_out.weight" for m in logs)
    with safe_open(str(child), "pt") as f:
        assert json.loads(f.metadata()["config"])["amodal_head"] is True
        assert torch.count_nonzero(f.get_tensor("amodal_out.weight")) == 0
    assert_same_clip(parent, child)

    # the pool keeps each target clip's amodal mask (of the target frames of a context clip)
    wcfg = WorldConfig(p_occluder=1.0)
    pool = ClipPool(30, wcfg, p_cameo=0.0, progress=False, p_context=0.4, amodal=True)
    assert ClipPool(3, wcfg, p_cameo=0.0, progress=False).amodal.shape[0] == 0
    for i in range(30):
        extra = 4 if pool.has_ctx[i] else 0
        clip = make_clip(i, wcfg, split="train", extra_frames=extra)
        assert np.array_equal(pool.amodal[i], amodal_mask(clip, wcfg)[extra:]), i

    # every batch carries its masks and the weight; the head and the trunk both move
    seen = []
    real = train_mod.flow_loss

    def spy(model, batch, **kw):
        seen.append((batch.amodal is not None, batch.amodal_weight))
        return real(model, batch, **kw)

    monkeypatch.setattr(train_mod, "flow_loss", spy)
    run = tmp_path / "amodal"
    train_from(parent, run, steps=4, lr=1e-2, amodal_weight=0.5, p_cameo=0.0, p_wall=1.0)
    assert seen == [(True, 0.5)] * 4
    with safe_open(str(run / "ckpt.safetensors"), "pt") as g:
        assert torch.count_nonzero(g.get_tensor("model.amodal_out.weight")) > 0
    # evaluate --out pictures what the head says of the first wall clips
    from generation.engine.evaluation.run import amodal_maps, save_amodal

    engine = get_engine("riff-world", weights=str(export_weights(run, tmp_path / "a.st")))
    walls = [make_clip(s, WorldConfig(), occluder=True) for s in range(2)]
    maps = amodal_maps(engine.model, engine.encoder, walls)
    assert maps.shape == (2, 16, 32, 32) and maps.min() > 0.0 and maps.max() < 1.0
    save_amodal(tmp_path / "amodal.png", engine.model, engine.encoder, walls)
    assert (tmp_path / "amodal.png").stat().st_size > 1000

    # resuming a run whose model has no head with a weight is refused, the run left as it was
    headless = tmp_path / "headless"
    train_from(parent, headless, steps=1)
    before = (headless / "ckpt.safetensors").read_bytes()
    with pytest.raises(ValueError, match="no amodal head"):
        train(
            headless,
            tiny_run(steps=2, amodal_weight=0.5),
            threads=1,
            progress=False,
            log=lambda *_: None,
        )
    assert (headless / "ckpt.safetensors").read_bytes() == before

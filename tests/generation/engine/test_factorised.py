"""The factorised attention mode (ModelConfig.attention), the ablation of issue #33: its token
groups, its match to the full model in parameters and FLOPs, its training and its weights."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from safetensors import safe_open

from generation.engine.backends import GenerationRequest, get_engine
from generation.engine.backends.riff_world import DEFAULT_WEIGHTS, load_model
from generation.engine.flow import Batch, flow_loss
from generation.engine.model import (
    CONFIGS,
    Attention,
    ModelConfig,
    SpaceTimeDiT,
    count_params,
    forward_flops,
    with_attention,
)
from generation.engine.training.checkpoints import export_weights
from generation.engine.training.config import TrainConfig
from generation.engine.training.loop import train

from ._util import random_text, randomize

MODES = ("full", "factorised")
QUIET = {"threads": 1, "progress": False, "log": lambda *_: None}


def tiny(attention: str, **kw) -> ModelConfig:
    base = {"hidden": 32, "depth": 1, "heads": 2, "max_text_tokens": 16}
    return ModelConfig(**{**base, **kw}, attention=attention)


def conditions(B: int = 2, seed: int = 0) -> dict:
    """A cameo reference and context frames for every sample (tests mask them per case)."""
    g = torch.Generator().manual_seed(seed)
    return {
        "refs": torch.rand(B, 1, 3, 32, 32, generator=g) * 2 - 1,
        "ref_mask": torch.ones(B, 1, dtype=torch.bool),
        "context": torch.rand(B, 3, 4, 32, 32, generator=g) * 2 - 1,
        "context_mask": torch.ones(B, dtype=torch.bool),
    }


# ------------------------------------------------------------------------------ shapes


@pytest.mark.parametrize("attention", MODES)
@pytest.mark.parametrize("text_mode", ["cross", "joint"])
def test_every_token_layout_keeps_the_output_shape_and_stays_finite(attention, text_mode):
    model = randomize(SpaceTimeDiT(tiny(attention, depth=2, text_mode=text_mode)), seed=1)
    text, mask, pooled = random_text(3)
    mask[1, 2:] = False
    x, t = torch.randn(3, 3, 16, 32, 32), torch.tensor([0.9, 0.5, 0.1])
    cond = conditions(3)
    cond["ref_mask"][1] = False  # a sample whose only reference is dropped
    cond["context_mask"][2] = False
    with torch.no_grad():
        for kw in ({}, cond, {"refs": cond["refs"], "ref_mask": torch.zeros(3, 1, dtype=bool)}):
            out = model(x, t, text, mask, pooled, **kw)
            assert out.shape == (3, 3, 16, 32, 32)
            assert torch.isfinite(out).all()
        # 8- and 32-frame clips: the temporal groups are as long as the clip
        for frames in (8, 32):
            out = model(torch.randn(3, 3, frames, 32, 32), t, text, mask, pooled, **cond)
            assert out.shape == (3, 3, frames, 32, 32) and torch.isfinite(out).all()


@pytest.mark.parametrize("attention", MODES)
def test_a_masked_reference_or_context_is_as_if_it_were_not_there(attention):
    """Masked global tokens (references) and masked context frames are never keys, in either
    mode: the clip comes out as it does without them."""
    model = randomize(SpaceTimeDiT(tiny(attention, depth=2)), seed=2, std=0.1).eval()
    text, mask, pooled = random_text(2)
    x, t = torch.randn(2, 3, 16, 32, 32), torch.tensor([0.7, 0.3])
    cond = conditions(2)
    cond["ref_mask"][:] = False
    cond["context_mask"][:] = False
    with torch.no_grad():
        bare = model(x, t, text, mask, pooled)
        masked = model(x, t, text, mask, pooled, **cond)
        cond["context_mask"][1] = True  # the second sample's context now counts
        seen = model(x, t, text, mask, pooled, **cond)
    torch.testing.assert_close(masked, bare, rtol=0, atol=1e-5)
    torch.testing.assert_close(seen[0], bare[0], rtol=0, atol=1e-5)
    assert (seen[1] - bare[1]).abs().max() > 1e-3


# ---------------------------------------------------------------------- token groups

# token grid of the tiny clip: 4 patch-times x 4 x 4 positions, frame-major (t, y, x)
NT, NH, NW = 4, 4, 4


def tok(t: int, y: int, x: int) -> int:
    return (t * NH + y) * NW + x


def test_each_sublayer_reads_only_its_group():
    """Spatial: a token's output depends on its own frame and the global tokens only.
    Temporal: on its own (y, x) column only. The full attention on every token."""
    torch.manual_seed(3)
    attn = randomize(Attention(32, 2), seed=3, std=0.3).eval()
    G, S = 5, NH * NW
    x = torch.randn(2, G + NT * S, 32)
    mask = torch.ones(2, G + NT * S, dtype=torch.bool)
    mask[1, :G] = False  # the second sample's global tokens are all masked
    probe = G + tok(1, 2, 3)

    def change(fn, j):
        x2 = x.clone()
        x2[:, j] += 1.0
        with torch.no_grad():
            return (fn(x2) - fn(x))[:, probe].abs().amax(-1)  # per sample

    def spatial(a):
        return attn.spatial(a, mask, G, S)

    def temporal(a):
        return torch.cat([a[:, :G], attn.temporal(a[:, G:], None, S)], dim=1)

    def full(a):
        return attn(a, mask)

    other_frame_same_place = G + tok(3, 2, 3)
    same_frame_other_place = G + tok(1, 0, 0)
    elsewhere = G + tok(3, 0, 1)  # another time and another position
    assert (change(spatial, same_frame_other_place) > 1e-3).all()
    assert change(spatial, other_frame_same_place).max() == 0
    assert change(spatial, elsewhere).max() == 0
    # the global tokens are keys of every frame, unless masked
    on, off = change(spatial, 0)
    assert on > 1e-3 and off == 0
    assert (change(temporal, other_frame_same_place) > 1e-3).all()
    assert change(temporal, same_frame_other_place).max() == 0
    assert change(temporal, elsewhere).max() == 0
    assert change(temporal, 0).max() == 0  # the global tokens take no part
    for j in (other_frame_same_place, same_frame_other_place, elsewhere):
        assert (change(full, j) > 1e-3).all()


def one_block(attention: str, silence: str | None = None) -> SpaceTimeDiT:
    """A 1-block model with every weight random (the adaLN-Zero gates open). `silence`
    zeroes the output projection of one of the factorised block's sublayers."""
    model = randomize(SpaceTimeDiT(tiny(attention)), seed=5, std=0.2).eval()
    blk = model.blocks[0]
    if silence is not None:
        layer = {"spatial": blk.attn, "temporal": blk.attn_t}[silence]
        torch.nn.init.zeros_(layer.proj.weight)
        torch.nn.init.zeros_(layer.proj.bias)
    return model


def probe_change(model: SpaceTimeDiT, where: tuple[int, int, int], **cond) -> float:
    """How much the output voxels of the probed token, patch (1, 2, 3), move when the input
    voxels of the token at patch `where` (t, y, x) are perturbed (patches do not overlap, so
    only that token's embedding changes)."""
    text, mask, pooled = random_text(1)
    g = torch.Generator().manual_seed(6)
    x = torch.randn(1, 3, 16, 32, 32, generator=g)
    t = torch.tensor([0.6])
    t0, y0, x0 = (4 * where[0], 8 * where[1], 8 * where[2])
    x2 = x.clone()
    x2[:, :, t0 : t0 + 4, y0 : y0 + 8, x0 : x0 + 8] += 1.0
    with torch.no_grad():
        d = model(x2, t, text, mask, pooled, **cond) - model(x, t, text, mask, pooled, **cond)
    # the velocity's x-term moves the perturbed voxels themselves: look at the probe's only
    return d[:, :, 4:8, 16:24, 24:32].abs().max().item()


def test_one_block_reaches_another_time_and_place_only_through_both_sublayers():
    """The brief's check, with what a spatial-then-temporal block really does. Full
    attention: the probe reads a token at another time and position directly. Factorised:
    the spatial layer alone never carries another frame, the temporal layer alone never
    another position; the two in sequence reach it in two hops (the spatial layer mixes it
    into the token at its time and our position, the temporal layer brings that to us),
    so a whole block is not blind to it, just indirect."""
    elsewhere, same_frame, same_place = (3, 0, 1), (1, 0, 0), (3, 2, 3)
    assert probe_change(one_block("full"), elsewhere) > 1e-3
    spatial_only = one_block("factorised", silence="temporal")
    assert probe_change(spatial_only, elsewhere) == 0
    assert probe_change(spatial_only, same_place) == 0
    assert probe_change(spatial_only, same_frame) > 1e-3
    temporal_only = one_block("factorised", silence="spatial")
    assert probe_change(temporal_only, elsewhere) == 0
    assert probe_change(temporal_only, same_frame) == 0
    assert probe_change(temporal_only, same_place) > 1e-3
    assert probe_change(one_block("factorised"), elsewhere) > 1e-5


def test_references_reach_every_frame_and_context_frames_only_their_own_positions():
    """The global tokens (here the cameo reference) are keys of every spatial group; context
    frames join the temporal groups at their own position."""
    base = conditions(1)
    pert = {**base, "refs": base["refs"] + 1.0}
    spatial_only = one_block("factorised", silence="temporal")
    text, mask, pooled = random_text(1)
    x, t = torch.randn(1, 3, 16, 32, 32), torch.tensor([0.6])
    with torch.no_grad():
        d = spatial_only(x, t, text, mask, pooled, **pert) - spatial_only(
            x, t, text, mask, pooled, **base
        )
    assert d.abs().amax(dim=(0, 1, 3, 4)).min() > 1e-3  # every frame moved
    temporal_only = one_block("factorised", silence="spatial")

    def context_change(y: int, x_: int) -> float:
        text, mask, pooled = random_text(1)
        x = torch.randn(1, 3, 16, 32, 32, generator=torch.Generator().manual_seed(7))
        ctx2 = base["context"].clone()
        ctx2[:, :, :, 8 * y : 8 * y + 8, 8 * x_ : 8 * x_ + 8] += 1.0
        with torch.no_grad():
            a = temporal_only(x, t, text, mask, pooled, **{**base, "context": ctx2})
            b = temporal_only(x, t, text, mask, pooled, **base)
        return (a - b)[:, :, 4:8, 16:24, 24:32].abs().max().item()

    assert context_change(2, 3) > 1e-3  # the probe's own position in the context frame
    assert context_change(0, 1) == 0


# ------------------------------------------------------------------ matched params/FLOPs


def test_the_ablation_pair_differs_only_in_attention_and_mlp_ratio():
    full, fact = CONFIGS["ablate-full"], CONFIGS["ablate-factorised"]
    assert (full.attention, fact.attention) == MODES
    assert (full.mlp_ratio, fact.mlp_ratio) == (4.0, 2.0)
    assert dataclasses.replace(fact, attention="full", mlp_ratio=4.0) == full
    assert with_attention(fact, "full") == full
    assert with_attention(full, "full") == full
    # the shipped configs keep full attention; the shipped file's config has no such key
    assert CONFIGS["small"].attention == CONFIGS["tiny"].attention == "full"
    assert ModelConfig.from_dict({"hidden": 64}).attention == "full"
    with pytest.raises(ValueError, match="one of full, factorised"):
        with_attention(full, "axial")
    with pytest.raises(ValueError, match="leaves no MLP"):
        with_attention(dataclasses.replace(full, mlp_ratio=2.0), "factorised")
    with pytest.raises(ValueError, match="one of full, factorised"):
        SpaceTimeDiT(dataclasses.replace(full, attention="axial"))


@pytest.mark.parametrize("name", ["ablate-full", "small", "tiny"])
def test_parameters_match_within_two_percent(name):
    full = CONFIGS[name]
    n_full = count_params(SpaceTimeDiT(full))
    n_fact = count_params(SpaceTimeDiT(with_attention(full, "factorised")))
    # the weights match exactly; the factorised block has one more set of biases and QK norms
    D, hd = full.hidden, full.hidden // full.heads
    extra_per_block = 3 * D + D + 2 * hd - 2 * D  # qkv and proj biases, norms; MLP biases
    assert n_fact - n_full == full.depth * extra_per_block
    assert abs(n_fact - n_full) / n_full < 0.02
    if name == "ablate-full":
        assert (n_full, n_fact) == (4_630_720, 4_632_768)


def attention_flop_gap(cfg: ModelConfig, globals_: int, frames: int) -> int:
    """Full minus factorised FLOPs of one forward, by hand: the attention scores (QK^T and AV,
    2 FLOPs per multiply-add, so 4 * queries * keys * D per attention), and the global tokens'
    share of the temporal layer's projections, which they skip (qkv and proj, 4 D^2 each)."""
    D, S, G = cfg.hidden, cfg.frame_tokens, globals_
    N = G + frames * S
    full = 4 * N * N * D
    spatial = 4 * (frames * S * (S + G) + G * G) * D
    temporal = 4 * S * frames * frames * D
    skipped = 2 * G * 4 * D * D
    return cfg.depth * (full - spatial - temporal + skipped)


def test_flops_differ_by_the_attention_scores_alone():
    """FLOPs per forward of the ablation pair at the shipped clip size (16 x 32 x 32, a 32-token
    prompt): the projections and MLPs cost the same, the factorised attention's scores less."""
    full, fact = CONFIGS["ablate-full"], CONFIGS["ablate-factorised"]
    f_full, f_fact = forward_flops(full), forward_flops(fact)
    assert (f_full, f_fact) == (441_827_328, 433_176_576)
    assert f_full - f_fact == attention_flop_gap(full, globals_=0, frames=4)
    assert (f_full - f_fact) / f_full < 0.02
    # a cameo reference: 16 global tokens; a context frame: a fifth frame of 16 tokens
    for kw, G, nf in (({"refs": True}, 16, 4), ({"context": True}, 0, 5)):
        gap = forward_flops(full, **kw) - forward_flops(fact, **kw)
        assert gap == attention_flop_gap(full, globals_=G, frames=nf), kw
    assert forward_flops(full, batch=2) == 2 * f_full


# --------------------------------------------------------------------------- training


@pytest.mark.parametrize("attention", MODES)
def test_a_train_step_runs_on_every_kind_of_batch(attention):
    model = SpaceTimeDiT(tiny(attention, depth=2, head_hidden=16))
    text, mask, pooled = random_text(2)
    x0 = torch.rand(2, 3, 16, 32, 32) * 2 - 1
    cond = conditions(2)
    cond["ref_mask"][0] = False
    batches = [
        Batch(x0, text, mask, pooled),
        Batch(x0, text, mask, pooled, refs=cond["refs"], ref_mask=cond["ref_mask"]),
        Batch(x0, text, mask, pooled, context=cond["context"], context_mask=cond["ref_mask"][:, 0]),
    ]
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    for batch in batches:
        loss = flow_loss(model, batch, generator=torch.Generator().manual_seed(0))
        opt.zero_grad()
        loss.backward()
        assert torch.isfinite(loss)
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        assert grads and all(torch.isfinite(g).all() for g in grads)
        opt.step()
    if attention == "factorised":
        assert model.blocks[0].attn_t.qkv.weight.grad.abs().sum() > 0


def tiny_run(**kw) -> TrainConfig:
    base = {
        "model": "tiny",
        "batch": 2,
        "pool_size": 12,
        "text_encoder": "hash",
        "ckpt_every_s": 1e9,
        "sample_steps": 1,
        "steps": 2,
    }
    return TrainConfig(**{**base, **kw})


def test_train_export_and_load_keep_the_factorised_mode(tmp_path):
    run = tmp_path / "run"
    logged: list[str] = []
    train(run, tiny_run(attention="factorised", p_cameo=0.5), **{**QUIET, "log": logged.append})
    assert any("factorised attention" in line for line in logged)
    used = json.loads((run / "config.json").read_text())
    assert (used["model"]["attention"], used["model"]["mlp_ratio"]) == ("factorised", 2.0)
    assert used["train"]["attention"] == "factorised"
    # a resumed run keeps the checkpoint's mode whatever its caller asks
    assert train(run, tiny_run(steps=3, attention="full"), **QUIET)["step"] == 3
    assert json.loads((run / "config.json").read_text())["model"]["attention"] == "factorised"

    out = export_weights(run, tmp_path / "fact.safetensors")
    with safe_open(str(out), "pt") as f:
        cfg = json.loads(f.metadata()["config"])
        keys = set(f.keys())
    assert (cfg["attention"], cfg["mlp_ratio"]) == ("factorised", 2.0)
    assert "blocks.0.attn_t.qkv.weight" in keys
    model, _meta = load_model(out)
    assert model.cfg.attention == "factorised" and model.blocks[0].factorised
    engine = get_engine("riff-world", weights=str(out), steps=1, method="euler")
    clip = engine.generate([GenerationRequest("a red ball bounces", seed=1)])[0]
    assert clip.frames.shape == (16, 32, 32, 3)

    # a new run may start from the export in its own mode, never in the other
    child = train(tmp_path / "child", tiny_run(steps=1), init_from=out, **QUIET)
    assert child["step"] == 1
    child_cfg = json.loads((tmp_path / "child" / "config.json").read_text())["model"]
    assert child_cfg["attention"] == "factorised"
    with pytest.raises(ValueError, match="trained with factorised attention"):
        train(tmp_path / "bad", tiny_run(attention="full"), init_from=out, **QUIET)
    assert not (tmp_path / "bad" / "ckpt.safetensors").exists()


def test_the_command_line_takes_the_mode_and_the_ablation_configs():
    import argparse

    from generation.engine.training.cli import add_arguments
    from generation.engine.training.config import config_from_args
    from generation.engine.training.loop import model_config

    p = argparse.ArgumentParser()
    add_arguments(p)
    assert config_from_args(p.parse_args([])).attention is None
    tc = config_from_args(p.parse_args(["--config", "small", "--attention", "factorised"]))
    assert model_config(tc) == with_attention(CONFIGS["small"], "factorised")
    tc = config_from_args(p.parse_args(["--config", "ablate-factorised"]))
    assert model_config(tc) == CONFIGS["ablate-factorised"]
    tc = config_from_args(p.parse_args(["--config", "ablate-factorised", "--attention", "full"]))
    assert model_config(tc) == CONFIGS["ablate-full"]
    with pytest.raises(SystemExit):
        p.parse_args(["--attention", "axial"])


# ---------------------------------------------------------------------- shipped weights


@pytest.mark.skipif(not DEFAULT_WEIGHTS.exists(), reason="no shipped weights")
def test_the_shipped_weights_still_load_as_full_attention():
    with safe_open(str(DEFAULT_WEIGHTS), "pt") as f:
        assert "attention" not in json.loads(f.metadata()["config"])
    model, _meta = load_model(DEFAULT_WEIGHTS)  # a strict state-dict load
    assert model.cfg.attention == "full"
    assert not any(b.factorised or hasattr(b, "attn_t") for b in model.blocks)
    assert count_params(model) == 7_836_224

from __future__ import annotations

import copy
import dataclasses
import math

import pytest
import torch

from generation.engine.flow import Batch, flow_loss
from generation.engine.model import (
    Block,
    ModelConfig,
    SpaceTimeDiT,
    count_params,
    patchify,
    unpatchify,
)

from ._util import random_text, randomize


def test_patchify_round_trip_and_token_count(tiny_cfg):
    x = torch.randn(2, 3, 16, 32, 32)
    tok = patchify(x, tiny_cfg)
    assert tok.shape == (2, 64, 3 * 4 * 8 * 8)
    assert torch.equal(unpatchify(tok, tiny_cfg), x)
    # token 0 is the first cuboid: frames 0-3, rows 0-7, columns 0-7, channel-major
    assert torch.equal(tok[0, 0].view(3, 4, 8, 8), x[0, :, :4, :8, :8])


def test_patch_embedding_matches_patchify_order(tiny_cfg):
    """Conv3d patch embedding == a linear map of the patchified cuboids (same token order)."""
    model = SpaceTimeDiT(tiny_cfg)
    x = torch.randn(1, 3, 16, 32, 32)
    conv = model.patch(x).flatten(2).transpose(1, 2)
    lin = patchify(x, tiny_cfg) @ model.patch.weight.flatten(1).T + model.patch.bias
    assert torch.allclose(conv, lin, atol=1e-5)


def test_forward_shape_and_zero_init_output(tiny_cfg):
    model = SpaceTimeDiT(tiny_cfg)
    text, mask, pooled = random_text(2)
    x = torch.randn(2, 3, 16, 32, 32)
    t = torch.tensor([0.5, 0.02])
    out = model(x, t, text, mask, pooled)
    assert out.shape == x.shape
    # the adaLN-Zero output layer starts at zero: x0_hat = 0, so v = x_t / max(t, t_min)
    torch.testing.assert_close(out[0], x[0] / 0.5)
    torch.testing.assert_close(out[1], x[1] / 0.05)
    v_model = SpaceTimeDiT(ModelConfig(hidden=32, depth=1, heads=2, prediction="v"))
    assert torch.count_nonzero(v_model(x, t, text, mask, pooled)) == 0
    # 8-frame clips work as well (positions are computed per call)
    assert model(x[:, :, :8], torch.rand(2), text, mask, pooled).shape == (2, 3, 8, 32, 32)


def test_mlp_output_head_starts_as_a_no_op_and_leaves_the_linear_subspace(tiny_cfg):
    """A model grown by the MLP head computes exactly what it did before, until it trains."""
    base = randomize(SpaceTimeDiT(tiny_cfg), seed=4).eval()
    grown = SpaceTimeDiT(dataclasses.replace(tiny_cfg, head_hidden=16)).eval()
    missing, unexpected = grown.load_state_dict(base.state_dict(), strict=False)
    assert sorted(missing) == [f"out_mlp.{i}.{p}" for i in (0, 2) for p in ("bias", "weight")]
    assert unexpected == []
    text, mask, pooled = random_text(2)
    x, t = torch.randn(2, 3, 16, 32, 32), torch.tensor([0.7, 0.3])
    with torch.no_grad():
        torch.testing.assert_close(grown(x, t, text, mask, pooled), base(x, t, text, mask, pooled))
        # the linear layer's patches all lie in a `hidden`-dim subspace of the patch space
        # (plus its bias); with the head trained they do not
        randomize(grown.out_mlp, seed=5, std=0.3)
        x0_lin = x - base(x, t, text, mask, pooled) * t.view(2, 1, 1, 1, 1)
        x0_mlp = x - grown(x, t, text, mask, pooled) * t.view(2, 1, 1, 1, 1)
    w, b = base.out.weight, base.out.bias  # [patch_dim, hidden]

    def off_subspace(x0):
        p = patchify(x0, tiny_cfg).reshape(-1, tiny_cfg.patch_dim) - b
        coef = torch.linalg.lstsq(w, p.T).solution
        return ((w @ coef - p.T).norm() / p.norm()).item()

    assert off_subspace(x0_lin) < 1e-4
    assert off_subspace(x0_mlp) > 0.05


def test_adaln_zero_blocks_start_as_identity():
    for mode in ("joint", "cross"):
        cfg = ModelConfig(hidden=32, depth=1, heads=2, text_mode=mode)
        blk = Block(cfg)
        x, c = torch.randn(2, 10, 32), torch.randn(2, 32)
        text, tmask = torch.randn(2, 4, 32), torch.ones(2, 4, dtype=torch.bool)
        assert torch.equal(blk(x, c, None, text, tmask), x)


def test_attention_spans_time(tiny_cfg):
    model = randomize(SpaceTimeDiT(tiny_cfg)).eval()
    text, mask, pooled = random_text(1)
    x = torch.randn(1, 3, 16, 32, 32)
    y = x.clone()
    y[:, :, -1] += 1.0  # change only the last frame
    t = torch.tensor([0.5])
    with torch.no_grad():
        a, b = model(x, t, text, mask, pooled), model(y, t, text, mask, pooled)
    # the first frame's tokens (frames 0-3) see the change through attention alone
    assert (a[:, :, 0] - b[:, :, 0]).abs().max() > 1e-4


def test_text_reaches_video_in_both_modes():
    for mode in ("joint", "cross"):
        cfg = ModelConfig(hidden=32, depth=2, heads=2, max_text_tokens=8, text_mode=mode)
        model = randomize(SpaceTimeDiT(cfg), std=0.3).eval()
        x, t = torch.randn(1, 3, 16, 32, 32), torch.tensor([0.3])
        text, mask, pooled = random_text(1)
        text2 = text.clone()
        text2[:, 2] = torch.randn(384)  # a token change, same pooled embedding
        with torch.no_grad():
            d = (model(x, t, text, mask, pooled) - model(x, t, text2, mask, pooled)).abs().max()
        assert d > 1e-4, mode


def test_cameo_tokens_condition_but_are_excluded_from_the_loss(tiny_cfg):
    model = randomize(SpaceTimeDiT(tiny_cfg))
    text, mask, pooled = random_text(2)
    refs = torch.rand(2, 1, 3, 32, 32) * 2 - 1
    batch = Batch(
        torch.rand(2, 3, 16, 32, 32) * 2 - 1,
        text,
        mask,
        pooled,
        refs,
        torch.ones(2, 1, dtype=torch.bool),
    )
    t, noise = torch.tensor([0.4, 0.7]), torch.randn(2, 3, 16, 32, 32)
    base = flow_loss(model, batch, t=t, noise=noise)

    # the references do condition the prediction ...
    no_ref = Batch(batch.x0, text, mask, pooled, refs, torch.zeros(2, 1, dtype=torch.bool))
    with torch.no_grad():
        assert abs(float(flow_loss(model, no_ref, t=t, noise=noise)) - float(base)) > 1e-6

    # ... but their outputs never reach the loss: scramble the last block's output at every
    # non-video position and the loss is bit-identical
    nv = tiny_cfg.video_tokens

    def scramble(_mod, _inp, out):
        out = out.clone()
        out[:, :-nv] = torch.randn_like(out[:, :-nv]) * 100
        return out

    handle = model.blocks[-1].register_forward_hook(scramble)
    try:
        assert torch.equal(flow_loss(model, batch, t=t, noise=noise), base)
    finally:
        handle.remove()


def test_a_few_training_steps_lower_the_loss_on_a_fixed_batch(tiny_cfg):
    torch.manual_seed(0)
    model = SpaceTimeDiT(tiny_cfg)
    text, mask, pooled = random_text(2)
    x0 = torch.zeros(2, 3, 16, 32, 32) - 0.9
    x0[:, 0, :, 8:16, 8:16] = 0.9  # a red square
    batch = Batch(x0, text, mask, pooled)
    g = torch.Generator().manual_seed(1)
    t, noise = torch.rand(2, generator=g), torch.randn(x0.shape, generator=g)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(8):
        loss = flow_loss(model, batch, t=t, noise=noise)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.8 * losses[0]
    assert all(b < a for a, b in zip(losses[:4], losses[1:5], strict=True))


def test_weighted_flow_loss_is_the_weighted_mean_of_the_squared_velocity_error(tiny_cfg):
    model = randomize(SpaceTimeDiT(tiny_cfg))
    text, mask, pooled = random_text(2)
    x0 = torch.rand(2, 3, 16, 32, 32) * 2 - 1
    t, noise = torch.tensor([0.3, 0.8]), torch.randn(2, 3, 16, 32, 32)
    plain = Batch(x0, text, mask, pooled)
    with torch.no_grad():
        base = flow_loss(model, plain, t=t, noise=noise)
        ones = dataclasses.replace(plain, weight=torch.ones(2, 1, 16, 32, 32))
        assert torch.allclose(flow_loss(model, ones, t=t, noise=noise), base, rtol=1e-5)

        w = torch.ones(2, 1, 16, 32, 32)
        w[:, :, :, 4:12, 20:30] = 5.0
        weighted = flow_loss(model, dataclasses.replace(plain, weight=w), t=t, noise=noise)
        xt = (1 - t.view(2, 1, 1, 1, 1)) * x0 + t.view(2, 1, 1, 1, 1) * noise
        v = model(xt, t, text, mask, pooled)
        err = (v - (noise - x0)).square()
        by_hand = (err * w).sum() / (w.sum() * 3)  # the weight is shared by the 3 channels
        assert torch.allclose(weighted, by_hand, rtol=1e-5)
        assert abs(float(weighted) - float(base)) > 1e-4


def test_configs_size():
    from generation.engine.model import CONFIGS

    assert count_params(SpaceTimeDiT(CONFIGS["tiny"])) < 200_000
    small = SpaceTimeDiT(CONFIGS["small"])
    assert 3e6 < count_params(small) < 8.5e6  # fp16 export < 30 MB
    assert CONFIGS["small"].video_tokens == 64
    assert copy.deepcopy(CONFIGS["small"]) == ModelConfig.from_dict(CONFIGS["small"].to_dict())


def test_sprite_pathway_is_off_without_a_reference_and_draws_the_sprite_where_it_says(tiny_cfg):
    """The sprite pathway changes nothing where a sample has no (or a dropped) reference; where
    it has one, the clean-clip prediction takes the sprite's texels over the square it puts
    wherever alpha is 1."""
    from generation.engine.model import SPRITE_ALPHA_INIT

    base = randomize(SpaceTimeDiT(tiny_cfg), seed=4).eval()
    cfg = dataclasses.replace(tiny_cfg, sprite_hidden=16)
    grown = SpaceTimeDiT(cfg).eval()
    missing, unexpected = grown.load_state_dict(base.state_dict(), strict=False)
    assert sorted(missing) == [f"sprite_mlp.{i}.{p}" for i in (0, 2) for p in ("bias", "weight")]
    assert unexpected == []
    n = 4 * 8 * 8  # voxels per token
    assert grown.sprite_mlp[2].weight.shape == (4 * n, 16)
    assert torch.count_nonzero(grown.sprite_mlp[2].weight) == 0
    assert torch.all(grown.sprite_mlp[2].bias[:n] == SPRITE_ALPHA_INIT)
    with pytest.raises(ValueError, match="x-prediction"):
        SpaceTimeDiT(dataclasses.replace(cfg, prediction="v"))

    text, mask, pooled = random_text(2)
    x, t = torch.randn(2, 3, 16, 32, 32), torch.tensor([0.6, 0.25])
    sprite = torch.rand(2, 3, 8, 8) * 2 - 1
    refs = sprite.repeat_interleave(4, -1).repeat_interleave(4, -2)[:, None]  # 8x8 -> 32x32
    on = torch.tensor([[True], [False]])
    with torch.no_grad():
        want = base(x, t, text, mask, pooled, refs, on)
        got, layout = grown(x, t, text, mask, pooled, refs, on, return_layout=True)
        assert layout.shape == (2, 4, 16, 32, 32)
        assert torch.equal(got[1], want[1])  # no reference: bit for bit the base model
        assert torch.equal(grown(x, t, text, mask, pooled), base(x, t, text, mask, pooled))
        # alpha starts at sigmoid(-4) < 0.5 everywhere: no voxel claims the square, no sprite
        assert torch.equal(got[0], want[0])

        # alpha 1 everywhere, the square centred with half-size 16 px: the sprite fills every
        # frame, and the clean prediction is the 32x32 reference itself
        bias = grown.sprite_mlp[2].bias
        bias[:n], bias[n : 3 * n], bias[3 * n :] = 50.0, 0.0, 1.0
        v = grown(x, t, text, mask, pooled, refs, on)
        x0 = x - v * t.view(2, 1, 1, 1, 1)
        # every voxel guessing a square of half-size 8 px centred on (12, 20), each relative
        # to its own pixel: the sprite over that square only, 2 px a texel
        base_x0 = x - want * t.view(2, 1, 1, 1, 1)
        _, layout = grown(x, t, text, mask, pooled, refs, on, return_layout=True)
        centre = torch.arange(32) + 0.5
        layout[:, 1] = ((12.0 - centre) / 16).view(1, 1, 1, 32)
        layout[:, 2] = ((20.0 - centre) / 16).view(1, 1, 32, 1)
        layout[:, 3] = 0.5
        small = grown.apply_sprite(base_x0, layout, refs[:, 0], on[:, 0])
    torch.testing.assert_close(x0[0], refs[0, 0][:, None].expand(3, 16, 32, 32), atol=1e-5, rtol=0)
    torch.testing.assert_close(v[1], want[1], atol=0, rtol=0)
    square = sprite[0].repeat_interleave(2, -1).repeat_interleave(2, -2)  # 16 x 16
    torch.testing.assert_close(small[0][:, :, 12:28, 4:20], square[:, None].expand(3, 16, 16, 16))
    # outside its square the sprite never shows, whatever alpha says: the base model's there
    outside = torch.ones(32, 32, dtype=torch.bool)
    outside[12:28, 4:20] = False
    torch.testing.assert_close(small[0][:, :, outside], base_x0[0][:, :, outside])

    # stray voxels far from the square do not drag it: alpha 1 on a 16x16 block and on a
    # 4x4 block elsewhere, every voxel guessing its own pixel (p = q = 0) with half-size 8
    with torch.no_grad():
        bias[:n] = -50.0
        bias[n : 3 * n], bias[3 * n :] = 0.0, 0.5
        _, layout = grown(x, t, text, mask, pooled, refs, on, return_layout=True)
        layout[:, 0, :, 8:24, 8:24] = 50.0  # the square, centred on (16, 16)
        layout[:, 0, :, 28:32, 0:4] = 50.0  # strays
        drawn = grown.apply_sprite(base_x0, layout, refs[:, 0], on[:, 0])
    big = sprite[0].repeat_interleave(2, -1).repeat_interleave(2, -2)
    torch.testing.assert_close(drawn[0][:, :, 8:24, 8:24], big[:, None].expand(3, 16, 16, 16))
    torch.testing.assert_close(drawn[0][:, :, 28:, :4], base_x0[0][:, :, 28:, :4])
    assert torch.equal(drawn[1], base_x0[1])


def test_sprite_loss_is_zero_for_the_true_layout_and_counts_only_kept_samples():
    from generation.engine.flow import sprite_loss

    T, H, W = 4, 16, 16
    shows = torch.zeros(2, T, H, W, dtype=torch.bool)
    shows[:, :, 4:10, 2:8] = True
    box = torch.tensor([5.0, 7.0, 3.0]).expand(2, T, 3).clone()  # cx, cy, r in pixels
    logit = torch.where(shows, 30.0, -30.0)
    # each voxel's guess is relative to its pixel centre (x, y): cx = x + W/2 p, cy = y + H/2 q,
    # r = W/2 s
    xs, ys = torch.arange(W) + 0.5, torch.arange(H) + 0.5
    p = ((5.0 - xs) / 8).expand(2, T, H, W)
    q = ((7.0 - ys) / 8)[:, None].expand(2, T, H, W)
    perfect = torch.stack([logit, p, q, torch.full((2, T, H, W), 3.0 / 8)], dim=1)
    assert float(sprite_loss(perfect, shows, box)) < 1e-9
    # the centre 3 px to the right on the voxels that show the sprite: smooth-L1 2.5 px per
    # sample; elsewhere the guess is free
    off = perfect.clone()
    off[:, 1] += 3.0 / 8
    assert abs(float(sprite_loss(off, shows, box)) - 2.5) < 1e-5
    off[:, 1][~shows] += 9.0
    assert abs(float(sprite_loss(off, shows, box)) - 2.5) < 1e-5
    # half a pixel off in r: 0.5 * 0.5^2 = 0.125; a sample whose reference was dropped does
    # not count
    off[1, 3] += 0.5 / 8
    keep = torch.tensor([True, False])
    assert abs(float(sprite_loss(off, shows, box, keep)) - 2.5) < 1e-5
    assert abs(float(sprite_loss(off, shows, box)) - (2.5 + 2.625) / 2) < 1e-5
    # alpha: the mean binary cross-entropy over every voxel
    flat = perfect.clone()
    flat[:, 0] = 0.0
    assert abs(float(sprite_loss(flat, shows, box)) - float(torch.log(torch.tensor(2.0)))) < 1e-6


def test_sprite_loss_trains_the_pathway_and_not_the_trunk(tiny_cfg):
    """The pathway reads the trunk's output tokens detached: its loss moves the sprite MLP
    only, as the flow loss moves everything but it (the composite is detached too)."""
    from generation.engine.flow import sprite_loss

    cfg = dataclasses.replace(tiny_cfg, sprite_hidden=16)
    model = randomize(SpaceTimeDiT(cfg), seed=6)
    text, mask, pooled = random_text(2)
    x, t = torch.randn(2, 3, 16, 32, 32), torch.tensor([0.6, 0.25])
    refs = torch.rand(2, 1, 3, 32, 32) * 2 - 1
    on = torch.tensor([[True], [True]])
    _, layout = model(x, t, text, mask, pooled, refs, on, return_layout=True)
    shows = torch.zeros(2, 16, 32, 32, dtype=torch.bool)
    shows[:, :, 4:14, 6:16] = True
    box = torch.tensor([11.0, 9.0, 5.0]).expand(2, 16, 3).clone()
    sprite_loss(layout, shows, box).backward()
    for name, p in model.named_parameters():
        touched = p.grad is not None and bool(p.grad.abs().sum() > 0)
        assert touched == name.startswith("sprite_mlp."), name


def test_amodal_head_starts_as_a_no_op_and_its_loss_reaches_the_trunk(tiny_cfg):
    """The amodal head (where objects are, the wall ignored) changes nothing the model draws;
    it starts at zero, so grown onto trained weights its loss is log 2 and touches only the
    head; once the head reads the trunk, its loss trains the trunk too (its purpose)."""
    from generation.engine.flow import amodal_loss

    base = randomize(SpaceTimeDiT(tiny_cfg), seed=4)
    grown = SpaceTimeDiT(dataclasses.replace(tiny_cfg, amodal_head=True))
    missing = grown.load_state_dict(base.state_dict(), strict=False).missing_keys
    assert sorted(missing) == ["amodal_out.bias", "amodal_out.weight"]
    text, mask, pooled = random_text(2)
    x, t = torch.randn(2, 3, 16, 32, 32), torch.tensor([0.7, 0.3])
    v, layout, amodal = grown(x, t, text, mask, pooled, return_amodal=True)
    assert torch.equal(v, base(x, t, text, mask, pooled)) and layout is None
    assert amodal.shape == (2, 16, 32, 32) and not amodal.any()
    assert base(x, t, text, mask, pooled, return_amodal=True)[2] is None

    target = torch.zeros(2, 16, 32, 32, dtype=torch.bool)
    target[:, :, 10:16, 4:10] = True
    assert abs(float(amodal_loss(amodal, target).detach()) - math.log(2)) < 1e-6
    grown.zero_grad()
    amodal_loss(grown(x, t, text, mask, pooled, return_amodal=True)[2], target).backward()
    trunk = [p for n, p in grown.named_parameters() if not n.startswith("amodal_out.")]
    assert all(p.grad is None or not p.grad.any() for p in trunk)
    assert grown.amodal_out.weight.grad.abs().sum() > 0

    randomize(grown.amodal_out, seed=5)
    grown.zero_grad()
    amodal_loss(grown(x, t, text, mask, pooled, return_amodal=True)[2], target).backward()
    assert grown.blocks[0].attn.qkv.weight.grad.abs().sum() > 0


def test_amodal_loss_weighs_object_and_empty_voxels_a_half_each():
    from generation.engine.flow import amodal_loss

    target = torch.zeros(1, 4, 8, 8, dtype=torch.bool)
    target[0, :, :2, :2] = True  # 16 of 256 voxels
    sure = torch.where(target, 20.0, -20.0)
    assert float(amodal_loss(sure, target)) < 1e-8
    # "nothing anywhere", confidently: the object half is wrong however few objects there are
    nothing = torch.full_like(sure, -20.0)
    assert abs(float(amodal_loss(nothing, target)) - 0.5 * 20.0) < 1e-3
    assert abs(float(amodal_loss(torch.zeros_like(sure), target)) - math.log(2)) < 1e-6


def test_amodal_head_can_read_an_earlier_block_and_then_trains_only_the_blocks_before_it(
    tiny_cfg,
):
    from generation.engine.flow import amodal_loss

    cfg = dataclasses.replace(tiny_cfg, amodal_head=True, amodal_block=1)
    model = randomize(SpaceTimeDiT(cfg), seed=8)
    text, mask, pooled = random_text(2)
    x, t = torch.randn(2, 3, 16, 32, 32), torch.tensor([0.7, 0.3])
    target = torch.zeros(2, 16, 32, 32, dtype=torch.bool)
    target[:, :4, :8, :8] = True
    amodal_loss(model(x, t, text, mask, pooled, return_amodal=True)[2], target).backward()
    assert model.blocks[0].mlp[0].weight.grad.abs().sum() > 0
    assert model.blocks[1].mlp[0].weight.grad is None  # after the block it reads
    assert model.out.weight.grad is None
    with pytest.raises(ValueError, match="amodal_block 3"):
        SpaceTimeDiT(dataclasses.replace(cfg, amodal_block=3))

from __future__ import annotations

import threading
import time
from dataclasses import replace

import numpy as np
import pytest
import torch

from generation.engine.backends import (
    Engine,
    EngineUnavailable,
    GenerationRequest,
    get_engine,
    register_engine,
    registered_engines,
)
from generation.engine.backends.riff_world import RiffWorldEngine
from generation.engine.flow import tensor_to_frames
from generation.engine.model import SpaceTimeDiT
from generation.engine.sampler import GenerationCancelled, SampleSpec, sample, sample_steps
from generation.engine.world import make_clip

from ._util import randomize


@pytest.fixture(scope="module")
def model(tiny_cfg):
    torch.manual_seed(0)
    return randomize(SpaceTimeDiT(tiny_cfg), seed=3).eval()


def _specs():
    cameo = make_clip(5, cameo=True).reference_images
    return [
        SampleSpec("a red ball bounces to the right", 1),
        SampleSpec("two small blue squares fall onto the floor on a dark blue background", 2),
        SampleSpec("the cameo slides to the left", 3, refs=cameo),
        SampleSpec("", 4),
    ]


@pytest.mark.parametrize("method", ["euler", "heun"])
def test_sampling_is_deterministic_per_seed(model, hash_encoder, method):
    s = [SampleSpec("a green triangle slides behind a grey wall", 42)]
    a = sample(model, hash_encoder, s, steps=3, method=method)
    b = sample(model, hash_encoder, s, steps=3, method=method)
    c = sample(model, hash_encoder, [SampleSpec(s[0].prompt, 43)], steps=3, method=method)
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)
    assert a.shape == (1, 3, 16, 32, 32) and a.abs().max() <= 1


def test_batched_and_single_sampling_agree(model, hash_encoder):
    specs = _specs()
    batched = sample(model, hash_encoder, specs, steps=3, method="heun")
    for i, s in enumerate(specs):
        single = sample(model, hash_encoder, [s], steps=3, method="heun")
        torch.testing.assert_close(single[0], batched[i], atol=1e-4, rtol=1e-4)
    # and the order of the batch does not matter either
    rev = sample(model, hash_encoder, specs[::-1], steps=3, method="heun")
    torch.testing.assert_close(rev.flip(0), batched, atol=1e-4, rtol=1e-4)


def test_guidance_interval_skips_the_unconditioned_branches_outside_it(model, hash_encoder):
    specs = _specs()  # one of them with a cameo: three guidance branches
    kw = {"steps": 4, "method": "euler", "text_scale": 4.0, "cameo_scale": 2.0}
    full = sample(model, hash_encoder, specs, **kw)
    torch.testing.assert_close(
        sample(model, hash_encoder, specs, guidance_interval=(0.0, 1.0), **kw), full
    )
    # never guided: exactly the conditional model, i.e. both scales at 1
    cond = sample(model, hash_encoder, specs, **{**kw, "text_scale": 1.0, "cameo_scale": 1.0})
    never = sample(model, hash_encoder, specs, guidance_interval=(2.0, 3.0), **kw)
    torch.testing.assert_close(never, cond, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(never, full, atol=1e-3)
    # guided only on the grid times 0.75 and 0.5: the batch sizes the model saw
    seen = []
    hook = model.register_forward_hook(lambda m, args, out: seen.append(args[0].shape[0]))
    try:
        sample(model, hash_encoder, specs, guidance_interval=(0.4, 0.8), **kw)
    finally:
        hook.remove()
    assert seen == [4, 9, 9, 4]  # t = 1, 0.75, 0.5, 0.25; 9 = 4 + 4 null + 1 cameo-less


def test_progress_and_cancellation(model, hash_encoder):
    seen = []
    sample(
        model,
        hash_encoder,
        _specs()[:1],
        steps=4,
        method="euler",
        on_step=lambda d, n: seen.append((d, n)),
    )
    assert seen == [(1, 4), (2, 4), (3, 4), (4, 4)]

    with pytest.raises(GenerationCancelled):
        sample(model, hash_encoder, _specs()[:1], steps=4, on_step=lambda d, n: d < 2)
    ev = threading.Event()
    ev.set()
    with pytest.raises(GenerationCancelled):
        sample(model, hash_encoder, _specs()[:1], steps=4, cancel=ev)


def test_tiny_engine_is_fast_and_cached():
    engine = get_engine("riff-world", config="tiny", weights=None)
    assert get_engine("riff-world", config="tiny", weights=None) is engine
    engine.generate([GenerationRequest("warm up", seed=0)])
    t0 = time.perf_counter()
    clip = engine.generate([GenerationRequest("a red ball bounces", seed=1)])[0]
    assert time.perf_counter() - t0 < 1.0
    assert clip.frames.shape == (16, 32, 32, 3) and clip.frames.dtype == np.uint8
    assert clip.fps == 8 and clip.seconds == 2.0
    assert clip.metadata["seed"] == 1 and clip.metadata["engine"] == "riff-world"


def test_engine_generate_batches_requests_and_reports_progress():
    engine = get_engine("riff-world", config="tiny", weights=None)
    cameo = make_clip(9, cameo=True).reference_images[0]
    reqs = [
        GenerationRequest("a red ball bounces", seed=1),
        GenerationRequest("a blue square slides", seed=2, cameo_images=[cameo]),
        GenerationRequest("a white ball", seed=3, seconds=1.0, instructions="make it slow"),
        GenerationRequest("a white ball", seed=4, context_frames=make_clip(1).frames),
    ]
    progress = []
    clips = engine.generate(reqs, on_progress=lambda d, n: progress.append((d, n)))
    assert [c.frames.shape[0] for c in clips] == [16, 16, 8, 16]
    assert clips[1].metadata["cameo_refs_used"] == 1
    assert clips[2].metadata["text"] == "a white ball. make it slow"
    assert clips[3].metadata["context_frames_used"] is True
    assert progress[-1] == (8, 8) and len(progress) == 8  # two length groups x 4 steps
    single = engine.generate([reqs[1]])[0]
    assert np.abs(single.frames.astype(int) - clips[1].frames.astype(int)).max() <= 1

    ev = threading.Event()
    ev.set()
    with pytest.raises(GenerationCancelled):
        engine.generate(reqs[:1], cancel=ev)


def test_registry():
    calls = []

    def factory(**opts):
        calls.append(opts)
        return get_engine("riff-world", config="tiny", weights=None)

    register_engine("test-dummy", factory)
    assert "riff-world" in registered_engines() and "test-dummy" in registered_engines()
    a = get_engine("test-dummy", flavour=1)
    assert get_engine("test-dummy", flavour=1) is a and calls == [{"flavour": 1}]
    assert isinstance(a, Engine)
    with pytest.raises(EngineUnavailable, match="unknown engine 'no-such-engine'"):
        get_engine("no-such-engine")


def test_autoguidance_pushes_away_from_the_guide_model(model, tiny_cfg, hash_encoder):
    specs = _specs()  # with a cameo and an unconditioned prompt
    kw = {"steps": 3, "method": "heun"}
    plain = sample(model, hash_encoder, specs, **kw)
    weak = randomize(SpaceTimeDiT(tiny_cfg), seed=11).eval()
    # scale 0, or the model guided by itself, is the plain sampler
    torch.testing.assert_close(sample(model, hash_encoder, specs, guide_model=weak, **kw), plain)
    self_guided = sample(model, hash_encoder, specs, guide_model=model, guide_scale=2.0, **kw)
    torch.testing.assert_close(self_guided, plain, atol=1e-5, rtol=1e-5)
    guided = sample(model, hash_encoder, specs, guide_model=weak, guide_scale=1.0, **kw)
    assert not torch.allclose(guided, plain, atol=1e-3)
    # one step of Euler is exactly v_cfg + s * (v_full - v_guide) from the same noise
    one = {"steps": 1, "method": "euler", "text_scale": 1.0, "cameo_scale": 1.0}
    s = [SampleSpec("a red ball bounces to the right", 5)]
    x1 = torch.randn(3, 16, 32, 32, generator=torch.Generator().manual_seed(5))[None]
    x_main = sample(model, hash_encoder, s, **one)  # x0 = x1 - v (t: 1 -> 0), clamped
    x_weak = sample(weak, hash_encoder, s, **one)
    v_main, v_weak = x1 - x_main, x1 - x_weak
    got = sample(model, hash_encoder, s, guide_model=weak, guide_scale=0.5, **one)
    want = (x1 - (v_main + 0.5 * (v_main - v_weak))).clamp(-1, 1)
    inside = (x_main.abs() < 1) & (x_weak.abs() < 1)  # where the clamp lost nothing
    assert inside.float().mean() > 0.9
    torch.testing.assert_close(got[inside], want[inside], atol=1e-4, rtol=1e-4)
    # it keeps batched and single sampling in agreement
    for i, sp in enumerate(specs):
        single = sample(model, hash_encoder, [sp], guide_model=weak, guide_scale=1.0, **kw)
        torch.testing.assert_close(single[0], guided[i], atol=1e-4, rtol=1e-4)


def test_autoguidance_refuses_a_guide_of_another_clip_size(model, tiny_cfg, hash_encoder):
    from dataclasses import replace

    other = SpaceTimeDiT(replace(tiny_cfg, height=16, width=16)).eval()
    with pytest.raises(ValueError, match="guide model"):
        sample(model, hash_encoder, _specs()[:1], steps=1, guide_model=other, guide_scale=1.0)


def test_engine_loads_guide_weights(tmp_path, tiny_cfg):
    import json

    from safetensors.torch import save_file

    from generation.engine.backends import clear_engine_cache

    path = tmp_path / "guide.safetensors"  # the shipped format: fp16, config in the metadata
    net = randomize(SpaceTimeDiT(tiny_cfg), seed=4)
    state = {k: v.half().contiguous() for k, v in net.state_dict().items()}
    meta = {"config": json.dumps(tiny_cfg.to_dict()), "total_steps": "7", "text_encoder": "hash"}
    save_file(state, str(path), metadata=meta)
    try:
        eng = get_engine(
            "riff-world",
            weights=path,
            guide_weights=path,
            guide_scale=1.5,
            steps=2,
            method="euler",
        )
        assert eng.guide_scale == 1.5 and eng.guide_model is eng.model  # one cached load
        assert eng.info["guide"] == "guide.safetensors" and eng.info["guide_step"] == 7
        (clip,) = eng.generate([GenerationRequest("a red ball bounces to the right", seed=1)])
        plain = get_engine("riff-world", weights=path, steps=2, method="euler")
        (ref,) = plain.generate([GenerationRequest("a red ball bounces to the right", seed=1)])
        assert np.abs(clip.frames.astype(int) - ref.frames.astype(int)).max() <= 1
    finally:
        clear_engine_cache()


def test_the_sprite_is_composited_after_guidance_and_only_on_cameo_requests(
    model, tiny_cfg, hash_encoder
):
    """A pathway that says 'the sprite fills the frame' makes a cameo request's clip exactly its
    reference in every frame at any cameo scale (copied, not extrapolated), and leaves the
    other requests of the batch bit for bit as the model without it drew them; batched and
    single sampling still agree."""
    import dataclasses

    grown = SpaceTimeDiT(dataclasses.replace(tiny_cfg, sprite_hidden=8)).eval()
    grown.load_state_dict(model.state_dict(), strict=False)
    n = 4 * 8 * 8
    with torch.no_grad():
        bias = grown.sprite_mlp[2].bias
        bias[:n], bias[n : 3 * n], bias[3 * n :] = 50.0, 0.0, 1.0
    specs = _specs()
    ref = torch.from_numpy(specs[2].refs[0].astype(np.int64)).permute(2, 0, 1)  # [3, 32, 32]
    for scale in (1.0, 3.0):
        kw = {"steps": 3, "method": "euler", "cameo_scale": scale}
        got = sample(grown, hash_encoder, specs, **kw)
        want = sample(model, hash_encoder, specs, **kw)
        frames = ((got[2].clamp(-1, 1) + 1) * 127.5).round().to(torch.int64)
        assert torch.equal(frames, ref[:, None].expand_as(frames))
        for i in (0, 1, 3):
            assert torch.equal(got[i], want[i]), i
        one = sample(grown, hash_encoder, specs[2:3], **kw)
        assert torch.allclose(one[0], got[2], atol=1e-5)


def test_two_pass_continues_each_clip_from_its_own_first_frames(model, hash_encoder):
    """The second pass is the remix continuation of the first pass's first frames: the
    output is those frames, then the continuation. Cameo and context requests are generated
    once and come out exactly as without the option."""
    ctx = make_clip(1).frames[:4]
    specs = _specs() + [SampleSpec("a white ball", 5, context=ctx)]
    kw = dict(steps=3, method="euler")
    once = sample(model, hash_encoder, specs, **kw)
    twice = sample(model, hash_encoder, specs, two_pass=True, **kw)
    Tc = model.cfg.max_context_frames
    assert Tc == 4 and twice.shape == once.shape
    for i in (0, 1, 3):  # no cameo, no context: continued
        first = tensor_to_frames(once[i, :, :Tc])
        again = sample(model, hash_encoder, [replace(specs[i], context=first)], **kw)[0]
        torch.testing.assert_close(twice[i, :, :Tc], once[i, :, :Tc], atol=1e-5, rtol=0)
        torch.testing.assert_close(twice[i, :, Tc:], again[:, :-Tc], atol=1e-4, rtol=1e-4)
        assert (twice[i, :, Tc:] - once[i, :, Tc:]).abs().max() > 0.05  # really regenerated
    for i in (2, 4):  # the cameo request and the one with its own context
        torch.testing.assert_close(twice[i], once[i], atol=1e-5, rtol=0)


def test_two_pass_reports_both_passes_and_cancels_in_the_second(model, hash_encoder):
    seen = []
    spec = _specs()[:1]

    def two_passes(on_step):
        return sample(
            model, hash_encoder, spec, steps=3, method="euler", two_pass=True, on_step=on_step
        )

    two_passes(lambda d, n: seen.append((d, n)))
    assert seen == [(k, 6) for k in range(1, 7)]
    assert sample_steps(model, spec, 3, True) == 6
    assert sample_steps(model, _specs()[2:3], 3, True) == 3  # a cameo request: one pass
    assert sample_steps(model, spec, 3, False) == 3
    with pytest.raises(GenerationCancelled, match="after step 4/6"):
        two_passes(lambda d, n: d < 4)


def test_engine_two_pass_progress_counts_each_chunk_by_its_passes(model, hash_encoder):
    engine = RiffWorldEngine(model, hash_encoder, steps=2, method="euler", two_pass=True)
    cameo = make_clip(9, cameo=True).reference_images[0]
    reqs = [
        GenerationRequest("a red ball bounces", seed=1),  # 16 frames: two passes
        GenerationRequest("a blue square slides", seed=2, seconds=1.0, cameo_images=[cameo]),
    ]
    progress = []
    clips = engine.generate(reqs, on_progress=lambda d, n: progress.append((d, n)))
    assert progress == [(1, 6), (2, 6), (3, 6), (4, 6), (5, 6), (6, 6)]
    assert [c.metadata["two_pass"] for c in clips] == [True, True]
    plain = RiffWorldEngine(model, hash_encoder, steps=2, method="euler").generate(reqs)
    assert np.array_equal(plain[1].frames, clips[1].frames)  # the cameo request: one pass
    assert np.array_equal(plain[0].frames[:4], clips[0].frames[:4])
    assert not np.array_equal(plain[0].frames[4:], clips[0].frames[4:])

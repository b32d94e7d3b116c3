"""The diffusers backend on tiny randomly initialised pipelines of the real classes (Wan 2.1,
LTX-Video, CogVideoX; config/devtools/diffusers_models.py): frame counts, sizes, seeds,
progress and cancellation between steps, batching, image-to-video for context frames and
cameos, and loading a saved pipeline from a local folder the way an operator deploys one."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch
from diffusers import (
    CogVideoXImageToVideoPipeline,
    LTXImageToVideoPipeline,
    LTXPipeline,
    WanImageToVideoPipeline,
    WanPipeline,
)
from PIL import Image, ImageOps

from config.devtools import diffusers_models as tiny
from generation.engine.backends import (
    Engine,
    EngineUnavailable,
    GenerationRequest,
    InputUnsupported,
    clear_engine_cache,
    get_engine,
    register_engine,
)
from generation.engine.backends.diffusers_video import FAMILIES, diffusers_engine

H, W = tiny.HEIGHT, tiny.WIDTH
STEPS = 3


def wan_engine(**options):
    options = {"steps": STEPS, "height": H, "width": W, **options}
    return diffusers_engine(pipeline=tiny.wan(), **options)


def wan_i2v_engine(**options):
    options = {"steps": STEPS, "height": H, "width": W, **options}
    return diffusers_engine(pipeline=tiny.wan(), i2v_pipeline=tiny.wan_i2v(), **options)


def forward_calls(module: torch.nn.Module) -> list[int]:
    """The batch size of each forward call of `module`, as they happen."""
    calls: list[int] = []
    module.register_forward_hook(
        lambda _m, args, kwargs, _out: calls.append(
            len(kwargs["hidden_states"] if "hidden_states" in kwargs else args[0])
        ),
        with_kwargs=True,
    )
    return calls


def pipeline_calls(monkeypatch, cls) -> list[dict]:
    """The keyword arguments of every `cls.__call__`, recorded around the real call."""
    calls: list[dict] = []
    real = cls.__call__

    def recording(self, *args, **kwargs):
        calls.append(kwargs)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(cls, "__call__", recording)
    return calls


def context(seed: int, frames: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (frames, H, W, 3), dtype=np.uint8)


# ------------------------------------------------------------------------ the protocol


def test_an_engine_is_the_protocol_with_the_family_defaults():
    engine = wan_engine()
    assert isinstance(engine, Engine)
    assert (engine.name, engine.fps, engine.height, engine.width) == ("diffusers-wan", 16, H, W)
    assert (engine.max_context_frames, engine.max_frames, engine.steps) == (0, 80, STEPS)
    assert engine.info == {
        "family": "wan",
        "dtype": "float32",
        "device": "cpu",
        "offload": "none",
        "path": "",
        "i2v": "",
    }
    with_i2v = wan_i2v_engine(name="wan-tiny", fps=12, max_frames=24)
    assert (with_i2v.name, with_i2v.fps, with_i2v.max_frames) == ("wan-tiny", 12, 24)
    assert with_i2v.max_context_frames == 1 and with_i2v.info["i2v"] == "pipeline"
    rules = {
        name: (f.t2v, f.frame_step, f.spatial_multiple, f.fps, f.height, f.width)
        for name, f in FAMILIES.items()
    }
    assert rules == {
        "wan": ("WanPipeline", 4, 16, 16, 832, 480),
        "ltx": ("LTXPipeline", 8, 32, 24, 704, 480),
        "cogvideox": ("CogVideoXPipeline", 8, 16, 8, 720, 480),
    }


@pytest.mark.parametrize(
    ("seconds", "frames", "pipeline_frames"),
    [(0.25, 4, 5), (0.5, 8, 9), (1.0, 16, 17), (1.3, 21, 21), (2.0, 32, 33), (6.0, 80, 81)],
)
def test_seconds_give_exactly_that_many_frames(seconds, frames, pipeline_frames, monkeypatch):
    calls = pipeline_calls(monkeypatch, WanPipeline)
    (clip,) = wan_engine().generate([GenerationRequest("a red ball", seconds=seconds)])
    assert clip.frames.shape == (frames, H, W, 3) and clip.frames.dtype == np.uint8
    assert clip.fps == 16 and clip.seconds == pytest.approx(frames / 16)
    # the smallest 4k+1 the model can make, trimmed to what was asked
    assert [c["num_frames"] for c in calls] == [pipeline_frames]
    assert clip.metadata["pipeline_frames"] == pipeline_frames


def test_frames_win_over_seconds_and_one_call_makes_at_most_max_frames():
    engine = wan_engine(max_frames=12)
    short, capped = engine.generate(
        [
            GenerationRequest("a red ball", frames=1, seconds=3.0),
            GenerationRequest("a red ball", frames=40),
        ]
    )
    assert short.frames.shape == (1, H, W, 3) and short.metadata["pipeline_frames"] == 1
    assert capped.frames.shape == (12, H, W, 3) and capped.metadata["pipeline_frames"] == 13


def test_ltx_and_cogvideox_lengths_follow_their_8k_plus_1_rule(monkeypatch):
    ltx_calls = pipeline_calls(monkeypatch, LTXPipeline)
    ltx = diffusers_engine(pipeline=tiny.ltx(), height=H, width=W, steps=2)
    (clip,) = ltx.generate([GenerationRequest("a blue cube", seconds=0.5)])  # 24 fps
    assert clip.frames.shape == (12, H, W, 3) and ltx_calls[-1]["num_frames"] == 17
    assert ltx_calls[-1]["frame_rate"] == 24  # LTX conditions on it
    cog = diffusers_engine(pipeline=tiny.cogvideox(), height=H, width=W, steps=2)
    (clip,) = cog.generate([GenerationRequest("a blue cube", seconds=1.25)])  # 8 fps
    assert clip.frames.shape == (10, H, W, 3) and clip.metadata["pipeline_frames"] == 17
    assert (ltx.max_frames, cog.max_frames, ltx.fps, cog.fps) == (160, 48, 24, 8)


# ------------------------------------------------------------------------------ sizes


def test_aspect_and_size_pick_the_orientation_in_spatial_multiples():
    engine = wan_engine()

    def shape(**fields) -> tuple[int, int]:
        (clip,) = engine.generate([GenerationRequest("a red ball", frames=1, **fields)])
        return clip.frames.shape[1:3]

    assert shape() == (64, 32)  # the configured default, portrait
    assert shape(aspect="9:16") == (64, 32)
    assert shape(aspect="16:9") == (32, 64)
    assert shape(aspect="1:1") == (48, 48)
    assert shape(aspect="9:16", size="1792x1024") == (32, 64)  # the exact size wins


def test_sizes_at_real_model_scale_keep_the_trained_sizes():
    # _size is pure arithmetic: the tiny pipeline stands in for the real one
    wan = wan_engine(height=832, width=480)
    ltx = diffusers_engine(pipeline=tiny.ltx(), height=704, width=480)

    def size(engine, **fields) -> tuple[int, int]:
        return engine._size(GenerationRequest("x", **fields), "")

    assert size(wan, aspect="9:16") == (832, 480) and size(wan, size="720x1280") == (832, 480)
    assert size(wan, aspect="16:9") == (480, 832) and size(wan, size="1280x720") == (480, 832)
    assert size(wan, aspect="1:1") == (624, 624)
    assert size(ltx, aspect="9:16") == (768, 448) and size(ltx, aspect="16:9") == (448, 768)
    assert size(ltx, aspect="1:1") == (576, 576)
    for height, width in (size(ltx, aspect="9:16"), size(ltx, aspect="16:9")):
        assert height % 32 == 0 and width % 32 == 0
    with pytest.raises(EngineUnavailable, match="multiples of 16"):
        wan_engine(height=840, width=480)


# ------------------------------------------------------------------ seeds and progress


def test_the_same_request_makes_the_same_clip_and_another_seed_another():
    engine = wan_engine()
    first, again, other = (
        engine.generate([GenerationRequest("a red ball", seed=seed, frames=5)])[0].frames
        for seed in (7, 7, 8)
    )
    assert np.array_equal(first, again)
    assert np.abs(first.astype(int) - other.astype(int)).mean() > 1.0


def test_progress_is_one_call_per_step_across_the_whole_call():
    seen: list[tuple[int, int]] = []
    engine = wan_engine(steps=4)
    # two sizes: two pipeline calls of four steps, reported as one run of eight
    engine.generate(
        [
            GenerationRequest("a red ball", frames=5, aspect="9:16"),
            GenerationRequest("a red ball", frames=5, aspect="16:9"),
        ],
        on_progress=lambda done, total: seen.append((done, total)),
    )
    assert seen == [(done, 8) for done in range(1, 9)]


class Cancelled(Exception):
    pass


def test_what_on_progress_raises_stops_sampling_between_steps_and_propagates():
    engine = wan_engine(steps=6)
    forwards = forward_calls(engine.pipeline.transformer)
    decodes = forward_calls(engine.pipeline.vae.decoder)
    raised = Cancelled("job cancelled")

    def on_progress(done: int, total: int) -> None:
        if done == 2:
            raise raised

    with pytest.raises(Cancelled) as caught:
        engine.generate([GenerationRequest("a red ball", frames=9)], on_progress=on_progress)
    assert caught.value is raised
    # two steps of classifier-free guidance (a conditional and an unconditional pass each),
    # then nothing: no third step, no decoding
    assert len(forwards) == 4 and decodes == []
    # the engine is free again
    (clip,) = engine.generate([GenerationRequest("a red ball", frames=5)])
    assert clip.frames.shape == (5, H, W, 3) and len(forwards) == 4 + 12


# ------------------------------------------------------------------------------ batching


def test_compatible_requests_share_one_call_and_match_running_alone(monkeypatch):
    calls = pipeline_calls(monkeypatch, WanPipeline)
    engine = wan_engine()
    requests = [
        GenerationRequest("a red ball bounces", seed=3, frames=5),
        GenerationRequest("a blue cube slides", seed=4, seconds=0.3),  # 5 frames too
    ]
    progress: list[tuple[int, int]] = []
    batched = engine.generate(requests, on_progress=lambda d, t: progress.append((d, t)))
    assert len(calls) == 1 and calls[0]["prompt"] == ["a red ball bounces", "a blue cube slides"]
    assert progress == [(1, STEPS), (2, STEPS), (3, STEPS)]
    assert [clip.metadata["batch_size"] for clip in batched] == [2, 2]
    alone = [engine.generate([request])[0] for request in requests]
    assert len(calls) == 3
    for together, single in zip(batched, alone, strict=True):
        assert together.frames.shape == single.frames.shape == (5, H, W, 3)
        assert np.abs(together.frames.astype(int) - single.frames.astype(int)).max() <= 2
    assert np.abs(batched[0].frames.astype(int) - batched[1].frames.astype(int)).mean() > 1.0


def test_max_batch_and_incompatible_requests_split_the_calls(monkeypatch):
    calls = pipeline_calls(monkeypatch, WanPipeline)
    engine = wan_engine(max_batch=2)
    clips = engine.generate(
        [
            GenerationRequest("a", seed=1, frames=5),
            GenerationRequest("b", seed=2, frames=9),  # another length
            GenerationRequest("c", seed=3, frames=5),
            GenerationRequest("d", seed=4, frames=5),  # a third of the same: over max_batch
        ]
    )
    assert [len(c["prompt"]) for c in calls] == [2, 1, 1]
    assert [c["num_frames"] for c in calls] == [5, 5, 9]
    assert [clip.metadata["seed"] for clip in clips] == [1, 2, 3, 4]  # in request order
    assert [len(clip.frames) for clip in clips] == [5, 9, 5, 5]


# --------------------------------------------------------------- images: context, cameos


def test_context_frames_start_the_clip_and_the_start_image_is_not_returned(monkeypatch):
    calls = pipeline_calls(monkeypatch, WanImageToVideoPipeline)
    engine = wan_i2v_engine()
    frames = context(1, frames=3)
    (clip,) = engine.generate(
        [GenerationRequest("a red ball", seed=5, frames=6, context_frames=frames)]
    )
    assert clip.frames.shape == (6, H, W, 3) and clip.metadata["start_image"] == "context"
    # six new frames: the pipeline made nine (4k+1 >= 6 + 1) and the first, the start image
    # again, was dropped
    assert len(calls) == 1 and calls[0]["num_frames"] == 9
    assert np.array_equal(np.asarray(calls[0]["image"]), frames[-1])  # the last context frame
    direct = engine.i2v_pipeline(
        image=Image.fromarray(frames[-1]),
        prompt=["a red ball"],
        negative_prompt=[""],
        height=H,
        width=W,
        num_frames=9,
        num_inference_steps=STEPS,
        guidance_scale=engine.guidance_scale,
        generator=[torch.Generator("cpu").manual_seed(5)],
        output_type="np",
    ).frames[0]
    expected = np.clip(np.rint(direct * 255), 0, 255).astype(np.uint8)
    assert np.array_equal(clip.frames, expected[1:7])


def test_a_continued_clip_is_made_at_its_context_frames_size():
    # the worker puts an extension after its source's frames, handed over at the engine's
    # size: a clip continuing them is made there whatever the job's aspect
    engine = wan_i2v_engine()
    (clip,) = engine.generate(
        [GenerationRequest("a red ball", frames=4, aspect="16:9", context_frames=context(6))]
    )
    assert clip.frames.shape == (4, H, W, 3)
    wide = np.zeros((1, 32, 64, 3), dtype=np.uint8)  # a previous 16:9 segment's last frame
    (clip,) = engine.generate(
        [GenerationRequest("a red ball", frames=4, aspect="16:9", context_frames=wide)]
    )
    assert clip.frames.shape == (4, 32, 64, 3)


def test_a_checkpoint_trained_at_one_size_makes_that_size(monkeypatch):
    calls = pipeline_calls(monkeypatch, CogVideoXImageToVideoPipeline)
    engine = diffusers_engine(
        pipeline=tiny.cogvideox(),
        i2v_pipeline=tiny.cogvideox_i2v(learned=True),
        height=H,
        width=W,
        steps=2,
    )
    cameo = np.zeros((90, 160, 3), dtype=np.uint8)
    clips = engine.generate(
        [
            GenerationRequest("@alice", frames=8, aspect="16:9", cameo_images=[cameo]),
            # text alone too: a long clip's next segment continues it through the
            # image-to-video model, which makes the trained size only
            GenerationRequest("a ball", frames=8, aspect="16:9"),
        ]
    )
    assert [clip.frames.shape for clip in clips] == [(8, H, W, 3), (8, H, W, 3)]
    assert engine.frame_size(aspect="16:9") == (H, W)
    assert (calls[0]["height"], calls[0]["width"]) == (H, W)
    with pytest.raises(EngineUnavailable, match="set height=64, width=32"):
        diffusers_engine(
            pipeline=tiny.cogvideox(),
            i2v_pipeline=tiny.cogvideox_i2v(learned=True),
            height=32,
            width=64,
        )


def test_wan_image_requests_go_one_by_one_and_ltx_ones_together(monkeypatch):
    wan_calls = pipeline_calls(monkeypatch, WanImageToVideoPipeline)
    requests = [
        GenerationRequest("a", seed=1, frames=4, context_frames=context(1)),
        GenerationRequest("b", seed=2, frames=4, context_frames=context(2)),
    ]
    clips = wan_i2v_engine().generate(requests)
    assert len(wan_calls) == 2 and [len(c.frames) for c in clips] == [4, 4]
    ltx_calls = pipeline_calls(monkeypatch, LTXImageToVideoPipeline)
    ltx = diffusers_engine(pipeline=tiny.ltx(), i2v="same", height=H, width=W, steps=2)
    assert ltx.i2v_pipeline.transformer is ltx.pipeline.transformer  # one set of weights
    clips = ltx.generate(requests)
    assert len(ltx_calls) == 1 and len(ltx_calls[0]["image"]) == 2
    assert [c.frames.shape for c in clips] == [(4, H, W, 3)] * 2
    assert ltx_calls[0]["num_frames"] == 9  # 8k+1 >= 4 + 1


def test_a_cameo_reference_starts_a_clip_with_an_image_to_video_model(monkeypatch):
    calls = pipeline_calls(monkeypatch, CogVideoXImageToVideoPipeline)
    engine = diffusers_engine(
        pipeline=tiny.cogvideox(), i2v_pipeline=tiny.cogvideox_i2v(), height=H, width=W, steps=2
    )
    portrait = np.random.default_rng(0).integers(0, 256, (200, 120, 3), dtype=np.uint8)
    (clip,) = engine.generate(
        [GenerationRequest("@alice waves", frames=10, cameo_images=[portrait, portrait[::-1]])]
    )
    assert clip.frames.shape == (10, H, W, 3) and clip.metadata["start_image"] == "cameo"
    assert calls[0]["num_frames"] == 17  # 10 + 1 -> 8k+1
    # the first reference frame, cropped to the clip's proportions (not squashed)
    (image,) = calls[0]["image"]
    fitted = ImageOps.fit(Image.fromarray(portrait), (W, H), Image.Resampling.BICUBIC)
    assert np.array_equal(np.asarray(image), np.asarray(fitted))


def test_cameos_are_refused_where_the_model_cannot_take_them():
    text_only = wan_engine()
    forwards = forward_calls(text_only.pipeline.transformer)
    cameo = context(3)[0]
    with pytest.raises(InputUnsupported) as refused:
        text_only.generate(
            [
                GenerationRequest("a red ball", frames=4),
                GenerationRequest("@alice waves", frames=4, cameo_images=[cameo]),
            ]
        )
    assert refused.value.code == "cameo_unsupported"
    assert "Remove the @mention" in str(refused.value)
    # refused before any work, the valid request included
    assert forwards == []

    with_images = wan_i2v_engine()
    forwards = forward_calls(with_images.i2v_pipeline.transformer)
    with pytest.raises(InputUnsupported) as refused:
        with_images.generate(
            [GenerationRequest("@alice", frames=4, cameo_images=[cameo], context_frames=context(4))]
        )
    assert refused.value.code == "cameo_unsupported"
    assert "one image" in str(refused.value)
    assert forwards == []
    # a later segment of the cameo's own clip continues its last frame, cameo and all
    (clip,) = with_images.generate(
        [
            GenerationRequest(
                "@alice", frames=4, cameo_images=[cameo], context_frames=context(4), continues=True
            )
        ]
    )
    assert clip.metadata["start_image"] == "context" and len(clip.frames) == 4


# --------------------------------------------------------------------------- loading


@pytest.fixture
def saved_wan(tmp_path):
    pipe = tiny.wan()
    pipe.save_pretrained(tmp_path / "wan")
    tiny.wan_i2v().save_pretrained(tmp_path / "wan-i2v")
    return pipe, tmp_path


def test_a_saved_pipeline_loads_from_its_folder_and_makes_the_same_clips(saved_wan):
    pipe, root = saved_wan
    register_engine("wan-tiny-unit", "diffusers", path=str(root / "wan"), steps=STEPS)
    try:
        engine = get_engine("wan-tiny-unit", i2v_path=str(root / "wan-i2v"), height=H, width=W)
        # the family is read from the folder's model_index.json
        assert engine.family is FAMILIES["wan"] and engine.info["path"] == str(root / "wan")
        assert isinstance(engine.pipeline, WanPipeline)
        assert isinstance(engine.i2v_pipeline, WanImageToVideoPipeline)
        assert engine.max_context_frames == 1
        request = GenerationRequest("a red ball", seed=9, frames=5)
        (loaded,) = engine.generate([request])
        (built,) = diffusers_engine(pipeline=pipe, height=H, width=W, steps=STEPS).generate(
            [request]
        )
        assert np.array_equal(loaded.frames, built.frames)
        (continued,) = engine.generate(
            [GenerationRequest("a red ball", seed=9, frames=5, context_frames=context(5))]
        )
        assert continued.frames.shape == (5, H, W, 3)
    finally:
        register_engine("wan-tiny-unit", "diffusers")
        clear_engine_cache()


def test_loading_never_leaves_the_folder(saved_wan, monkeypatch):
    _pipe, root = saved_wan
    seen = []
    real = WanPipeline.from_pretrained.__func__

    def recording(cls, *args, **kwargs):
        seen.append(kwargs)
        return real(cls, *args, **kwargs)

    monkeypatch.setattr(WanPipeline, "from_pretrained", classmethod(recording))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    diffusers_engine(family="wan", path=root / "wan", steps=1)
    assert seen[0]["local_files_only"] is True and seen[0]["dtype"] is torch.float32


def test_missing_or_wrong_folders_are_engine_unavailable(saved_wan, tmp_path):
    _pipe, root = saved_wan
    with pytest.raises(EngineUnavailable, match="no diffusers pipeline at"):
        diffusers_engine(family="wan", path=tmp_path / "nowhere")
    with pytest.raises(EngineUnavailable, match="holds a WanPipeline, not the LTXPipeline"):
        diffusers_engine(family="ltx", path=root / "wan")
    with pytest.raises(
        EngineUnavailable, match="holds a WanPipeline, not the WanImageToVideoPipeline"
    ):
        diffusers_engine(path=root / "wan", i2v_path=root / "wan")  # the T2V folder as I2V
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "model_index.json").write_text(
        json.dumps({"_class_name": "WanPipeline", "transformer": ["diffusers", "Nope"]})
    )
    with pytest.raises(EngineUnavailable, match="could not be loaded"):
        diffusers_engine(path=broken)
    with pytest.raises(EngineUnavailable, match="unknown diffusers model family 'sora'"):
        diffusers_engine(family="sora", path=root / "wan")
    with pytest.raises(EngineUnavailable, match="one of path= or pipeline="):
        diffusers_engine(family="wan")
    with pytest.raises(EngineUnavailable, match="separate image-to-video weights"):
        diffusers_engine(pipeline=tiny.wan(), i2v="same")
    with pytest.raises(EngineUnavailable, match="needs a LTXPipeline"):
        diffusers_engine(family="ltx", pipeline=tiny.wan())


def test_without_diffusers_the_backend_is_unavailable(monkeypatch):
    monkeypatch.setitem(sys.modules, "diffusers", None)  # `import diffusers` fails
    monkeypatch.delitem(sys.modules, "generation.engine.backends.diffusers_video")
    register_engine("no-diffusers", "generation.engine.backends.diffusers_video:diffusers_engine")
    try:
        with pytest.raises(EngineUnavailable, match="needs the `diffusers` extra"):
            get_engine("no-diffusers", family="wan", path="/models/wan")
    finally:
        register_engine("no-diffusers", "diffusers")


def test_bf16_runs_on_a_cpu(saved_wan):
    _pipe, root = saved_wan
    engine = diffusers_engine(path=root / "wan", dtype="bf16", height=H, width=W, steps=2)
    assert engine.info["dtype"] == "bfloat16"
    assert engine.pipeline.transformer.dtype is torch.bfloat16
    (clip,) = engine.generate([GenerationRequest("a red ball", frames=5)])
    assert clip.frames.shape == (5, H, W, 3) and clip.frames.dtype == np.uint8
    # an object keeps its dtype unless one is given
    assert wan_engine().pipeline.transformer.dtype is torch.float32
    assert wan_engine(dtype="bf16").pipeline.transformer.dtype is torch.bfloat16


def test_offload_and_cuda_need_a_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for offload in ("model", "sequential"):
        with pytest.raises(EngineUnavailable, match="needs a CUDA GPU"):
            wan_engine(offload=offload)
    with pytest.raises(EngineUnavailable, match="no CUDA GPU"):
        wan_engine(device="cuda")
    with pytest.raises(EngineUnavailable, match="offload is one of"):
        wan_engine(offload="disk")
    with pytest.raises(EngineUnavailable, match="dtype is one of"):
        wan_engine(dtype="int8")
    assert wan_engine(device="auto").info["device"] == "cpu"


def test_warm_is_one_cheap_step_and_changes_nothing():
    engine = wan_engine()
    forwards = forward_calls(engine.pipeline.transformer)
    request = GenerationRequest("a red ball", seed=2, frames=5)
    before = engine.generate([request])[0].frames
    del forwards[:]
    engine.warm()
    assert forwards == [1]  # one step, no guidance pass
    assert np.array_equal(engine.generate([request])[0].frames, before)

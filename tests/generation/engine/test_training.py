from __future__ import annotations

import json

import numpy as np
from safetensors import safe_open

from generation.engine.interface import GenerationRequest, get_engine
from generation.engine.train import TrainConfig, export_weights, train


def test_train_resume_export_and_load(tmp_path):
    run = tmp_path / "run"
    tc = TrainConfig(
        model="tiny",
        steps=3,
        batch=4,
        pool_size=24,
        text_encoder="hash",
        refresh_every=2,
        refresh_count=4,
        ckpt_every_s=1e9,
        sample_steps=1,
    )
    first = train(run, tc, threads=1, progress=False, log=lambda *_: None)
    assert first["step"] == 3
    for name in ("ckpt.safetensors", "optim.pt", "loss.csv", "loss.png", "samples.png"):
        assert (run / name).exists(), name
    tc.steps = 5
    second = train(run, tc, threads=1, progress=False, log=lambda *_: None)
    assert second["step"] == 5
    assert len((run / "loss.csv").read_text().splitlines()) == 1 + 5

    out = export_weights(run, tmp_path / "w.safetensors")
    with safe_open(str(out), "pt") as f:
        meta = f.metadata()
        assert json.loads(meta["config"])["hidden"] == 32
        assert meta["step"] == "5" and meta["text_encoder"] == "hash"
        assert all(f.get_tensor(k).dtype.is_floating_point for k in f.keys())  # noqa: SIM118
    engine = get_engine("riff-world", weights=str(out), steps=2)
    clip = engine.generate([GenerationRequest("a red ball", seed=1)])[0]
    assert clip.frames.shape == (16, 32, 32, 3) and clip.metadata["model_step"] == 5
    assert np.isfinite(clip.frames).all()

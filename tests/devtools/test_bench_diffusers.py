"""`manage.py bench_diffusers` runs the diffusers backend itself and writes what the capacity
model needs; here on the tiny Wan (the same command measures Wan 1.3B's sizes on a GPU)."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import call_command


def test_the_benchmark_times_the_backends_own_calls(tmp_path):
    out = tmp_path / "bench.json"
    log = io.StringIO()
    call_command(
        "bench_diffusers",
        "--model", "tiny", "--clips", "2", "--steps", "3", "--frames", "17",
        "--out", str(out),
        stdout=log,
    )  # fmt: skip
    report = json.loads(out.read_text())
    assert report["model"] == "tiny" and report["engine"]["family"] == "wan"
    assert (report["frames"], report["fps"], report["steps"]) == (17, 16, 3)
    assert (report["height"], report["width"]) == (64, 32)
    assert len(report["clip_seconds"]) == 2 and all(t > 0 for t in report["clip_seconds"])
    mean = sum(report["clip_seconds"]) / 2  # of the rounded times: within a millisecond
    assert report["clip_seconds_mean"] == pytest.approx(mean, abs=1e-3)
    assert report["step_seconds_mean"] == pytest.approx(report["clip_seconds_mean"] / 3, abs=1e-3)
    assert report["peak_gpu_bytes"] is None  # no CUDA here
    assert "17 frames 64x32, 3 steps" in log.getvalue()


def test_the_wan_13b_stand_in_has_the_released_models_sizes():
    """Built on the meta device (shapes only, no memory): the parameter counts of Wan 2.1 T2V
    1.3B's transformer (1.42 B), UMT5-XXL's encoder (5.68 B) and the Wan VAE (127 M), so a
    timing of the stand-in is a timing of the released model's arithmetic."""
    import torch

    from config.devtools.diffusers_models import wan_13b

    pipe = wan_13b(device="meta")

    def count(module) -> float:
        return sum(p.numel() for p in module.parameters())

    assert count(pipe.transformer) == pytest.approx(1.419e9, rel=1e-3)
    assert count(pipe.text_encoder) == pytest.approx(5.681e9, rel=1e-3)
    assert count(pipe.vae) == pytest.approx(126.9e6, rel=1e-3)
    assert pipe.transformer.dtype == pipe.text_encoder.dtype == torch.bfloat16
    assert pipe.vae.dtype == torch.float32
    assert torch.get_default_dtype() == torch.float32  # restored

"""Per-clip time and memory of the diffusers backend, for the capacity model
(docs/operations.md, "Fleet"). `manage.py bench_diffusers`:

    --model tiny       the tests' tiny Wan (a CPU check of the command itself)
    --model wan-1.3b   Wan 2.1 T2V 1.3B at its real sizes, random weights (a GPU with no
                       weights on it measures what the released model costs)
    --path DIR         a real checkpoint folder, as a worker loads it

It runs the backend itself (DiffusersVideoEngine.generate, the worker's call): one warm-up
clip, then `--clips` timed ones, and writes seconds per clip and per step, frames per second
of compute and peak GPU memory to `--out` (JSON). Prompts differ per clip; seeds are fixed.
"""

from __future__ import annotations

import json
import platform
import statistics
import time
from pathlib import Path

PROMPTS = [
    "a red ball bounces on a wooden floor",
    "a cat walks along a garden wall at sunset",
    "waves roll onto a beach under a grey sky",
    "a paper boat drifts down a rain gutter",
]


def add_arguments(parser) -> None:
    parser.add_argument("--model", default="tiny", choices=["tiny", "wan-1.3b"])
    parser.add_argument("--path", default=None, help="a saved pipeline folder instead")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", default=None, choices=["bf16", "fp16", "fp32"])
    parser.add_argument("--offload", default="none", choices=["none", "model", "sequential"])
    parser.add_argument("--frames", type=int, default=None, help="default: 5 s at the fps")
    parser.add_argument("--height", type=int, default=None)
    parser.add_argument("--width", type=int, default=None)
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--clips", type=int, default=3)
    parser.add_argument("--out", default="docs/bench-diffusers.json")


def _engine(args):
    import torch

    from config.devtools import diffusers_models
    from generation.engine.backends.diffusers_video import diffusers_engine

    options = {
        key: value
        for key, value in {
            "height": args.height,
            "width": args.width,
            "steps": args.steps,
            "max_frames": args.frames,
        }.items()
        if value
    }
    common = {"device": args.device, "dtype": args.dtype, "offload": args.offload, **options}
    if args.path:
        return diffusers_engine(path=args.path, **common)
    if args.model == "tiny":
        pipeline = diffusers_models.wan()
        options.setdefault("height", diffusers_models.HEIGHT)
        options.setdefault("width", diffusers_models.WIDTH)
        return diffusers_engine(pipeline=pipeline, **{**common, **options})
    device = "cuda" if args.device == "auto" and torch.cuda.is_available() else args.device
    device = "cpu" if device == "auto" else device
    dtype = {"fp16": torch.float16, "fp32": torch.float32}.get(args.dtype, torch.bfloat16)
    pipeline = diffusers_models.wan_13b(
        device="cpu" if args.offload != "none" else device, dtype=dtype
    )
    return diffusers_engine(pipeline=pipeline, **common)


def run(args, *, log=print) -> dict:
    import torch
    from tqdm import tqdm

    from generation.engine.backends import GenerationRequest

    started = time.perf_counter()
    engine = _engine(args)
    built = time.perf_counter() - started
    frames = args.frames or 5 * engine.fps + 1
    frames = min(frames, engine.max_frames)
    cuda = engine.info["device"].startswith("cuda")
    if cuda:
        torch.cuda.reset_peak_memory_stats()

    def clip(index: int) -> tuple[float, int]:
        request = GenerationRequest(PROMPTS[index % len(PROMPTS)], seed=index, frames=frames)
        if cuda:
            torch.cuda.synchronize()
        began = time.perf_counter()
        (made,) = engine.generate([request])
        if cuda:
            torch.cuda.synchronize()
        return time.perf_counter() - began, len(made.frames)

    warm, _ = clip(0)
    times = []
    for index in tqdm(range(1, args.clips + 1), desc="clips", unit="clip"):
        seconds, made = clip(index)
        assert made == frames, (made, frames)
        times.append(seconds)
    mean = statistics.fmean(times)
    report = {
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {
            "device": torch.cuda.get_device_name(0) if cuda else platform.processor() or "cpu",
            "torch": torch.__version__,
        },
        "engine": engine.info,
        "model": args.path or args.model,
        "frames": frames,
        "fps": engine.fps,
        "height": engine.height,
        "width": engine.width,
        "steps": engine.steps,
        "build_seconds": round(built, 2),
        "warm_up_seconds": round(warm, 3),
        "clip_seconds": [round(t, 3) for t in times],
        "clip_seconds_mean": round(mean, 3),
        "step_seconds_mean": round(mean / engine.steps, 4),
        "video_seconds_per_compute_second": round(frames / engine.fps / mean, 4),
        "peak_gpu_bytes": int(torch.cuda.max_memory_allocated()) if cuda else None,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    log(
        f"{report['model']} on {report['machine']['device']}: {frames} frames "
        f"{engine.height}x{engine.width}, {engine.steps} steps: {mean:.2f} s per clip "
        f"({report['step_seconds_mean']:.3f} s per step) -> {args.out}"
    )
    return report

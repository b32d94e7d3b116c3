"""Speed of the engine (`manage.py bench_engine`): forward throughput and achieved FLOP rate
against a plain matmul timed in turns with it (medians), seconds per clip at the default sampler settings, batched vs one-by-one
requests.

Tooling, so it lives here rather than in the engine package; it reads the engine only through
`generation.engine.backends`. Without Django: `python -m config.devtools.bench.engine`.
"""

from __future__ import annotations

import json
import platform
import statistics
import time
from pathlib import Path

import torch


def _timeit(fn, reps: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    t0 = time.perf_counter()
    for _ in range(reps):
        fn()
    return (time.perf_counter() - t0) / reps


def _sync(device: str) -> None:
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


MATMUL_PER_ROUND = 5  # n x n matmuls timed per round: about as long as one forward


@torch.no_grad()
def forward_stats(
    model,
    batch: int = 8,
    text_tokens: int = 12,
    reps: int = 5,
    device: str = "cpu",
    matmul_n: int = 1024,
) -> dict:
    """Forward throughput and its share of the same process's matmul GFLOP/s.

    Timed in turns: `reps` rounds (at least 3) of a block of MATMUL_PER_ROUND matmuls, then
    one forward, so that whatever else the machine does (another process, a clock that
    changes) weighs on both. Reports the medians of each and the median of the per-round
    ratio, with every round's ratio: one matmul reading taken before the forwards made the
    share swing from 37 to 71 % between runs on a shared box."""
    from torch.utils.flop_counter import FlopCounterMode

    cfg = model.cfg
    x = torch.randn(batch, cfg.channels, cfg.frames, cfg.height, cfg.width, device=device)
    t = torch.rand(batch, device=device)
    text = torch.randn(batch, text_tokens, cfg.text_dim, device=device)
    mask = torch.ones(batch, text_tokens, dtype=torch.bool, device=device)
    pooled = torch.randn(batch, cfg.text_dim, device=device)
    a = torch.randn(matmul_n, matmul_n, device=device)
    b = torch.randn(matmul_n, matmul_n, device=device)

    def forward():
        model(x, t, text, mask, pooled)
        _sync(device)

    def matmul():
        torch.mm(a, b)
        _sync(device)

    with FlopCounterMode(display=False) as fc:
        model(x, t, text, mask, pooled)
    flops = fc.get_total_flops()
    forward()  # warm-up, both
    matmul()
    mm_s, fw_s = [], []
    for _ in range(max(3, reps)):
        mm_s.append(_timeit(matmul, MATMUL_PER_ROUND, warmup=0))
        fw_s.append(_timeit(forward, 1, warmup=0))
    mm_gflops = [2 * matmul_n**3 / s / 1e9 for s in mm_s]
    fw_gflops = [flops / s / 1e9 for s in fw_s]
    ratios = [f / m for f, m in zip(fw_gflops, mm_gflops, strict=True)]
    sec = statistics.median(fw_s)
    seq = cfg.video_tokens + (text_tokens + 1 if cfg.text_mode == "joint" else 0)
    return {
        "batch": batch,
        "video_tokens_per_clip": cfg.video_tokens,
        "sequence_tokens_per_clip": seq,
        "rounds": len(ratios),
        "seconds_per_forward": sec,
        "video_tokens_per_s": batch * cfg.video_tokens / sec,
        "sequence_tokens_per_s": batch * seq / sec,
        "gflop_per_forward": flops / 1e9,
        "achieved_gflops": statistics.median(fw_gflops),
        "matmul_gflops": statistics.median(mm_gflops),
        "fraction_of_matmul": statistics.median(ratios),
        "fraction_of_matmul_per_round": ratios,
    }


def bench(
    out_path: str | Path | None = None,
    weights: str | None = "default",
    device: str = "cpu",
    threads: int | None = None,
    reps: int = 3,
    log=print,
) -> dict:
    from generation.engine.backends import GenerationRequest, get_engine

    if threads:
        torch.set_num_threads(threads)
    if weights == "random":
        engine = get_engine(
            "riff-world",
            weights=None,
            config="small",
            text_encoder="hash",
            steps=24,
            method="heun",
            device=device,
        )
    else:
        engine = get_engine("riff-world", weights=weights, device=device)
    model = engine.model
    res: dict = {
        "device": device,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(),
        "params": sum(p.numel() for p in model.parameters()),
        "config": model.cfg.to_dict(),
    }
    # matmul and forward timed in turns (forward_stats); the medians, not one reading each
    res["forward"] = forward_stats(model, device=device, reps=reps)
    res["matmul_gflops"] = res["forward"]["matmul_gflops"]
    prompts = [
        "a red ball bounces to the right",
        "two small blue squares fall onto the floor",
        "a purple triangle slides behind a grey wall",
        "an orange ball jumps up",
        "a white square and a green ball bounce",
        "three yellow balls fall down",
        "a large blue triangle hops to the left",
        "a red square slides to the right",
    ]
    reqs = [GenerationRequest(p, seed=i) for i, p in enumerate(prompts)]
    engine.generate(reqs[:1])  # warm-up, text encoder load
    t0 = time.perf_counter()
    engine.generate(reqs[:1])
    one = time.perf_counter() - t0
    t0 = time.perf_counter()
    for r in reqs:
        engine.generate([r])
    singles = time.perf_counter() - t0
    t0 = time.perf_counter()
    engine.generate(reqs)
    batched = time.perf_counter() - t0
    res["sampler"] = {
        "steps": engine.steps,
        "method": engine.method,
        "model_evals_per_step": 2 if engine.method == "heun" else 1,
        "cfg_branches": 2,
        # requests without a cameo or context go through twice (sampler.sample two_pass)
        "two_pass": engine.two_pass,
    }
    res["seconds_per_clip"] = one
    if engine.two_pass:  # what the second pass costs: the same weights, one pass
        single = get_engine("riff-world", weights=weights, device=device, two_pass=False)
        res["seconds_per_clip_one_pass"] = _timeit(lambda: single.generate(reqs[:1]), reps=1)
    res["eight_single_requests_s"] = singles
    res["one_batch_of_eight_s"] = batched
    res["batch_speedup"] = singles / batched
    res["clips_per_s_batched"] = 8 / batched
    if out_path:
        Path(out_path).parent.mkdir(parents=True, exist_ok=True)
        Path(out_path).write_text(json.dumps(res, indent=2))
        log(f"wrote {out_path}")
    log(json.dumps({k: v for k, v in res.items() if k != "config"}, indent=1))
    return res


def add_arguments(parser) -> None:
    parser.add_argument("--out", default=".data/engine-bench/bench.json")
    parser.add_argument(
        "--weights", default="default", help="weights file, 'default', or 'random' (small config)"
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--reps", type=int, default=3)


def run_from_args(args, log=print) -> dict:
    return bench(args.out, args.weights, args.device, args.threads, args.reps, log=log)


def main(argv=None) -> None:
    import argparse

    p = argparse.ArgumentParser(description="Benchmark the riff-world engine.")
    add_arguments(p)
    run_from_args(p.parse_args(argv))


if __name__ == "__main__":
    main()

"""The command line of a training run, shared by `manage.py train_engine` and
`python -m generation.engine.training`.

The TrainConfig flags come from the config's fields (training/config.py); the flags here are
the ones about the run itself: where it lives, how long it may take, what it starts from.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..backends.riff_world import DEFAULT_WEIGHTS
from .checkpoints import export_weights
from .config import add_config_arguments, config_from_args
from .loop import train


def add_arguments(parser) -> None:
    parser.add_argument(
        "--out",
        default=".data/engine-runs/riff-world-v0",
        help="run directory (checkpoint, loss.png, samples.png)",
    )
    add_config_arguments(parser)
    parser.add_argument("--max-minutes", type=float, default=None)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--no-resume", action="store_true", help="start from scratch")
    parser.add_argument(
        "--init-from",
        default=None,
        metavar="WEIGHTS",
        help="start a new run from exported weights (e.g. the shipped checkpoint)",
    )
    parser.add_argument(
        "--export-weights",
        default="ema",
        choices=["ema", "model"],
        help="which weights --export writes (default: the EMA)",
    )
    parser.add_argument(
        "--export",
        nargs="?",
        const=str(DEFAULT_WEIGHTS),
        default=None,
        metavar="PATH",
        help="write the EMA weights of --out (no training)",
    )


def run_from_args(args, log=print) -> dict:
    if args.export:
        path = export_weights(args.out, args.export, which=args.export_weights)
        size = Path(path).stat().st_size / 1e6
        log(f"exported {path} ({size:.1f} MB)")
        return {"exported": str(path), "mb": size}
    summary = train(
        args.out,
        config_from_args(args),
        resume=not args.no_resume,
        device=args.device,
        threads=args.threads,
        max_minutes=args.max_minutes,
        log=log,
        init_from=args.init_from,
    )
    log(json.dumps(summary))
    return summary


def main(argv=None) -> None:
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m generation.engine.training", description="Train the riff-world video model."
    )
    add_arguments(parser)
    run_from_args(parser.parse_args(argv))

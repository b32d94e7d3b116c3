"""Run checkpoints (model + EMA + optimizer, resumable) and the exported weights file the
engine loads."""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from ..backends.riff_world import DEFAULT_WEIGHTS
from ..world import EVAL_SEED_BASE
from .config import TrainConfig
from .data import pool_seeds


def save_checkpoint(out: Path, model, ema, opt, step: int, tc: TrainConfig, extra: dict) -> None:
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    tensors.update({f"ema.{k}": v.detach().cpu().contiguous() for k, v in ema.state_dict().items()})
    meta = {
        "step": str(step),
        "config": json.dumps(model.cfg.to_dict()),
        "train_config": json.dumps(asdict(tc)),
        "extra": json.dumps(extra),
    }
    tmp = out / "ckpt.safetensors.tmp"
    save_file(tensors, str(tmp), metadata=meta)
    os.replace(tmp, out / "ckpt.safetensors")
    torch.save({"optimizer": opt.state_dict(), "step": step}, out / "optim.pt.tmp")
    os.replace(out / "optim.pt.tmp", out / "optim.pt")


def read_checkpoint(path: Path) -> tuple[dict, dict]:
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        meta = f.metadata() or {}
    return load_file(str(path)), meta


def export_weights(
    run_dir: str | Path,
    out_path: str | Path = DEFAULT_WEIGHTS,
    dtype: torch.dtype = torch.float16,
    which: str = "ema",
    extra_meta: dict[str, str] | None = None,
) -> Path:
    """EMA (or raw, which="model") weights in fp16 + config JSON in the safetensors metadata.

    `extra_meta`: more metadata strings, e.g. the lineage of a shipped file or the "sampler"
    settings it was measured with (`backends.riff_world.weight_sampler_defaults`).

    "training_seeds" records the seeds this run's training clips came from (data.pool_seeds:
    a bound over resumes), beside the evaluation's first seed, so that a file says itself
    that it never saw an evaluation clip. Weights it started from (--init-from) are listed
    under "parent" with what they recorded (or `{"unrecorded": name}` for files older than
    this record)."""
    run_dir, out_path = Path(run_dir), Path(out_path)
    tensors, meta = read_checkpoint(run_dir / "ckpt.safetensors")
    prefix = f"{which}."
    ema = {
        k[len(prefix) :]: v.to(dtype).contiguous()
        for k, v in tensors.items()
        if k.startswith(prefix)
    }
    tc = json.loads(meta.get("train_config", "{}"))
    extra = json.loads(meta.get("extra", "{}"))
    init_steps = int(extra.get("init_steps", 0))
    first, last = pool_seeds(TrainConfig.from_dict(tc), int(meta.get("step", "0")))
    seeds = {"first": first, "last": last, "eval_seed_base": EVAL_SEED_BASE, "run": run_dir.name}
    if extra.get("init_training_seeds") is not None:
        seeds["parent"] = extra["init_training_seeds"]
    out_meta = {
        "config": meta["config"],
        "step": meta.get("step", "0"),  # of this run
        # of the weights' whole lineage (runs started --init-from add their parent's)
        "total_steps": str(init_steps + int(meta.get("step", "0"))),
        "format": "riff-world-v0",
        "text_encoder": tc.get("text_encoder", "minilm"),
        "source_run": run_dir.name,
        "weights": which,
        "training_seeds": json.dumps(seeds),
        **(extra_meta or {}),
    }
    out_path.parent.mkdir(parents=True, exist_ok=True)
    save_file(ema, str(out_path), metadata=out_meta)
    return out_path

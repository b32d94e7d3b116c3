"""Training the riff-world model: the run's config (config.py), its data (data.py), the loop
(loop.py), checkpoints and the exported weights (checkpoints.py), the command line (cli.py).

    from generation.engine.training import TrainConfig, train
    train(".data/engine-runs/mine", TrainConfig(model="tiny", steps=100))
"""

from __future__ import annotations

from typing import Any

_API = {
    "TrainConfig": "config",
    "ClipPool": "data",
    "export_weights": "checkpoints",
    "read_checkpoint": "checkpoints",
    "train": "loop",
}

__all__ = sorted(_API)


def __getattr__(name: str) -> Any:
    # lazy: `training.config` stays importable (and the CLI's --help fast) without torch
    if name in _API:
        import importlib

        return getattr(importlib.import_module(f".{_API[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

"""Riff's generation engine: a small video diffusion transformer trained on a procedural world.

Self-contained: depends on torch, numpy, safetensors, Pillow, matplotlib, tqdm and the MiniLM
wheel, never on Django. The layout:

    model.py flow.py sampler.py text.py   the core: the DiT, rectified flow, the sampler, text
    world.py captions.py                  the procedural world and its captions (numpy only)
    backends/                             the Engine protocol, the registry, "riff-world"
    training/                             TrainConfig, the data, the loop, checkpoints, the CLI
    evaluation/                           image analysis, metrics, targets, the report
    viz.py                                PNG grids and loss curves (the speed benchmark is
                                          tooling: config/devtools/bench/engine.py)

The public API is loaded lazily so that `generation.engine.world` (numpy only) and
`generation.engine.backends` (no torch until an engine is built) import where torch is not
installed.

    from generation.engine import GenerationRequest, get_engine
    clips = get_engine("riff-world").generate([GenerationRequest("a red ball bounces")])
"""

from __future__ import annotations

from typing import Any

_API = {
    "Engine": "backends",
    "EngineUnavailable": "backends",
    "GeneratedClip": "backends",
    "GenerationRequest": "backends",
    "get_engine": "backends",
    "register_engine": "backends",
    "registered_engines": "backends",
    "clear_engine_cache": "backends",
    "DEFAULT_WEIGHTS": "backends.riff_world",
    "GenerationCancelled": "sampler",
    "SpaceTimeDiT": "model",
    "ModelConfig": "model",
    "TrainConfig": "training.config",
    "make_clip": "world",
    "WorldConfig": "world",
}

__all__ = sorted(_API)


def __getattr__(name: str) -> Any:
    if name in _API:
        import importlib

        module = importlib.import_module(f".{_API[name]}", __name__)
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

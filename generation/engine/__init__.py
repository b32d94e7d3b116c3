"""Riff's generation engine: a small video diffusion transformer trained on a procedural world.

Self-contained: depends on torch, numpy, safetensors, Pillow, matplotlib, tqdm and the MiniLM
wheel, never on Django. The public API is loaded lazily so that `generation.engine.world`
(numpy only) can be imported where torch is not installed.

    from generation.engine import GenerationRequest, get_engine
    clips = get_engine("riff-world").generate([GenerationRequest("a red ball bounces")])
"""

from __future__ import annotations

from typing import Any

_API = {
    "Engine": "interface",
    "EngineUnavailable": "interface",
    "GeneratedClip": "interface",
    "GenerationRequest": "interface",
    "get_engine": "interface",
    "register_engine": "interface",
    "registered_engines": "interface",
    "clear_engine_cache": "interface",
    "DEFAULT_WEIGHTS": "interface",
    "GenerationCancelled": "sampler",
    "SpaceTimeDiT": "model",
    "ModelConfig": "model",
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

"""The engine registry: backends by name, built once per process for each set of options.

    engine = get_engine("riff-world")                       # shipped weights, cached
    clips = engine.generate([GenerationRequest("a red ball bounces", seed=1)],
                            on_progress=lambda done, total: print(done, total))

A backend registers a factory under a name, either the callable itself or a
"package.module:function" path that is imported on first use. The built-in "riff-world" is
registered by path, so importing this package (the web tier does, for `EngineUnavailable`)
never loads torch. `settings.RIFF_ENGINE` names the backend the worker uses and
`settings.RIFF_ENGINE_OPTIONS` are the factory's keyword arguments. How to write one:
docs/engine-backends.md.
"""

from __future__ import annotations

import importlib
import json
import threading
from collections.abc import Callable

from .base import (
    Engine,
    EngineUnavailable,
    GeneratedClip,
    GenerationRequest,
    InputUnsupported,
    ProgressFn,
)

__all__ = [
    "Engine",
    "EngineUnavailable",
    "GeneratedClip",
    "GenerationRequest",
    "InputUnsupported",
    "ProgressFn",
    "clear_engine_cache",
    "engine_takes_cameos",
    "engine_takes_images",
    "get_engine",
    "register_engine",
    "registered_engines",
]

Factory = Callable[..., Engine]

_FACTORIES: dict[str, Factory | str] = {
    "riff-world": "generation.engine.backends.riff_world:riff_world",
    # open text-to-video models through Hugging Face diffusers (the `diffusers` extra)
    "diffusers": "generation.engine.backends.diffusers_video:diffusers_engine",
    # any server speaking the /v1/videos shape (another Riff, vLLM-Omni)
    "remote": "generation.engine.backends.remote:remote_engine",
}
# What the web tier may know of a backend's inputs without building it (admission refuses what
# the worker would): (takes cameos, takes cameos in a clip that continues another video, takes
# a start image), from the options it is registered with. A backend not listed takes all three.
_INPUT_RULES: dict[str, Callable[[dict], tuple[bool, bool, bool]]] = {
    # images (a cameo's, a reference, a clip's last frame) only with image-to-video; a remix
    # or an extension already starts from the clip it continues
    "diffusers": lambda o: (_i2v(o), False, _i2v(o)),
    # a likeness never leaves the operator's machines (remote.py says why)
    "remote": lambda o: (False, False, o.get("send_context", True) is not False),
}


def _i2v(options: dict) -> bool:
    return any(options.get(k) for k in ("i2v_path", "i2v", "i2v_pipeline"))


# the backend each registered name is (itself, or what register_engine made it of)
_BACKENDS: dict[str, str] = {name: name for name in ("riff-world", "diffusers", "remote")}
# options a name was registered with (register_engine's keywords); a get_engine call's own
# options are laid over them
_DEFAULTS: dict[str, dict] = {}
_INSTANCES: dict[str, Engine] = {}
_LOCK = threading.Lock()


def register_engine(name: str, factory: Factory | str, **defaults) -> None:
    """Make `get_engine(name, **options)` call `factory(**defaults, **options)` (once per
    options).

    `factory` is a callable, a "package.module:function" path imported on first use, or the
    name of a backend registered before ("diffusers", "remote"): then `name` is that backend
    with these `defaults` (`RIFF_ENGINES` in settings registers its engines this way, e.g.
    "wan2.1-t2v-1.3b" as "diffusers" with a weights path). Registering a name again replaces
    it and drops the instances the old factory built."""
    with _LOCK:
        backend = name
        if isinstance(factory, str) and ":" not in factory:
            if factory not in _FACTORIES or factory == name:
                raise EngineUnavailable(f"no backend {factory!r} to register {name!r} as")
            defaults = {**_DEFAULTS.get(factory, {}), **defaults}
            backend = _BACKENDS.get(factory, factory)
            factory = _FACTORIES[factory]
        _BACKENDS[name] = backend
        _FACTORIES[name] = factory
        _DEFAULTS[name] = dict(defaults)
        for key in [k for k in _INSTANCES if k.startswith(name + "|")]:
            del _INSTANCES[key]


def registered_engines() -> list[str]:
    return sorted(_FACTORIES)


def _resolve(name: str) -> Factory:
    """The factory registered as `name`, importing it the first time it is named by path."""
    with _LOCK:
        if name not in _FACTORIES:
            raise EngineUnavailable(f"unknown engine {name!r}; registered: {sorted(_FACTORIES)}")
        factory = _FACTORIES[name]
    if isinstance(factory, str):
        module, _, attr = factory.partition(":")
        try:
            resolved = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as exc:
            # e.g. a web-tier image without the worker extra (torch) asked for riff-world
            raise EngineUnavailable(
                f"engine {name!r} cannot be imported ({factory}): {exc}"
            ) from exc
        with _LOCK:
            if _FACTORIES.get(name) == factory:
                _FACTORIES[name] = resolved
        return resolved
    return factory


def get_engine(name: str = "riff-world", **options) -> Engine:
    """The engine `name`, built once per process for each distinct set of options. With
    `batch_window_ms` (and `batch_size`, default 4) the engine is wrapped so that concurrent
    jobs run as batches (generation.engine.backends.batching).

    Raises EngineUnavailable for a name nothing registered, and whatever the factory raises
    when it cannot build (riff-world: EngineUnavailable for a missing weights file)."""
    with _LOCK:
        options = {**_DEFAULTS.get(name, {}), **options}
    key = name + "|" + json.dumps(options, sort_keys=True, default=str)
    with _LOCK:
        if key in _INSTANCES:
            return _INSTANCES[key]
    factory = _resolve(name)
    own = dict(options)
    # Any backend: concurrent jobs within this many ms run as one batch (backends.batching).
    window, size = own.pop("batch_window_ms", 0), own.pop("batch_size", 4)
    engine = factory(**own)
    if window:
        from .batching import BatchingEngine

        engine = BatchingEngine(engine, window=float(window) / 1000, max_batch=int(size))
    with _LOCK:
        return _INSTANCES.setdefault(key, engine)


def engine_takes_cameos(name: str, *, continuing: bool = False) -> bool:
    """Whether the engine `name` can put a cameo in a clip (`continuing`: in one that continues
    another video, a remix or an extension), judged from its backend and registered options
    without building it: admission refuses up front what the worker would refuse after the
    job queued. An unknown name says True (the worker then fails it as unavailable)."""
    with _LOCK:
        rule = _INPUT_RULES.get(_BACKENDS.get(name, name))
        options = _DEFAULTS.get(name, {})
    if rule is None:
        return True
    fresh, continued, _images = rule(options)
    return continued if continuing else fresh


def engine_takes_images(name: str) -> bool:
    """Whether the engine `name` can start a clip from an image (a Videos API reference),
    judged as `engine_takes_cameos` is."""
    with _LOCK:
        rule = _INPUT_RULES.get(_BACKENDS.get(name, name))
        options = _DEFAULTS.get(name, {})
    return True if rule is None else rule(options)[2]


def clear_engine_cache() -> None:
    """Forget every built engine, and whatever a factory caches beside it (a factory may
    carry a `cache_clear()`, as riff-world's does for its loaded weights)."""
    with _LOCK:
        _INSTANCES.clear()
        factories = [f for f in _FACTORIES.values() if not isinstance(f, str)]
    for factory in factories:
        clear = getattr(factory, "cache_clear", None)
        if callable(clear):
            clear()

"""The built-in backend, "riff-world": the shipped SpaceTimeDiT, its text encoder and sampler.

    get_engine("riff-world")                                  # the shipped weights
    get_engine("riff-world", weights="path/to.safetensors")   # another export
    get_engine("riff-world", config="tiny", weights=None)     # random weights, for tests

Beyond the `Engine` protocol it takes a `cancel` (a threading.Event or a callable returning
True, checked before every step), and `on_progress` returning False cancels too; either way
`sampler.GenerationCancelled` is raised. The model card (docs/engine.md) lists its options.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from ..flow import tensor_to_frames
from ..model import CONFIGS, ModelConfig, SpaceTimeDiT, count_params
from ..sampler import SampleSpec, sample, sample_steps
from ..text import TextEncoder
from .base import EngineUnavailable, GeneratedClip, GenerationRequest, ProgressFn

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"
DEFAULT_WEIGHTS = WEIGHTS_DIR / "riff-world-v0.safetensors"

__all__ = ["DEFAULT_WEIGHTS", "RiffWorldEngine", "load_model", "riff_world"]


def _as_image(img) -> np.ndarray:
    if isinstance(img, str | Path):
        from PIL import Image

        img = Image.open(img).convert("RGB")
    arr = np.asarray(img)
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=-1)
    if arr.dtype != np.uint8:
        arr = np.clip(arr * (255.0 if arr.max() <= 1.0 else 1.0), 0, 255).astype(np.uint8)
    return arr[..., :3]


class RiffWorldEngine:
    """A loaded model + text encoder + sampler settings (implements `base.Engine`)."""

    fps = 8

    def __init__(
        self,
        model: SpaceTimeDiT,
        encoder: TextEncoder,
        *,
        name: str = "riff-world",
        steps: int = 24,
        method: str = "heun",
        text_scale: float = 4.0,
        cameo_scale: float = 1.0,
        shift: float = 1.0,
        guidance_interval: tuple[float, float] | None = None,
        guide_model: SpaceTimeDiT | None = None,
        guide_scale: float = 0.0,
        device: str = "cpu",
        max_batch: int = 16,
        info: dict | None = None,
        two_pass: bool = False,
    ):
        self.model, self.encoder, self.name = model.eval(), encoder, name
        self.steps, self.method = steps, method
        self.text_scale, self.cameo_scale, self.shift = text_scale, cameo_scale, shift
        self.guidance_interval = tuple(guidance_interval) if guidance_interval else None
        self.guide_model, self.guide_scale = guide_model, float(guide_scale)
        self.device, self.max_batch = device, max_batch
        self.two_pass = bool(two_pass)  # sampler.sample: continue from the first frames
        self.info = info or {}
        self._lock = threading.Lock()  # one generation at a time per engine instance

    @staticmethod
    def _spec(r: GenerationRequest) -> SampleSpec:
        text = r.prompt.strip()
        if r.instructions.strip():
            text = f"{text}. {r.instructions.strip()}" if text else r.instructions
        refs = [_as_image(im) for im in (r.cameo_images or [])]
        ctx = None if r.context_frames is None else np.asarray(r.context_frames)
        return SampleSpec(text, int(r.seed), refs or None, ctx)

    @property
    def config(self) -> ModelConfig:
        return self.model.cfg

    # the Engine protocol's frame size and remix context, as the weights were trained
    @property
    def height(self) -> int:
        return self.model.cfg.height

    @property
    def width(self) -> int:
        return self.model.cfg.width

    @property
    def max_context_frames(self) -> int:
        return self.model.cfg.max_context_frames

    @property
    def max_frames(self) -> int:
        """The most frames one call makes (`frames_for` caps a request there); the worker
        makes longer clips segment by segment (base.Engine)."""
        return 2 * self.model.cfg.frames

    def warm(self) -> None:
        """Everything a first generation would pay once: the text encoder (MiniLM loads on
        first use) and one guided Euler step of a default-length clip, so every kernel, the
        allocator and the thread pool are set up. A worker calls it at start
        (generation.runner.warm); a tenth of a second or so."""
        spec = self._spec(GenerationRequest("a red ball bounces on the floor", seed=0))
        with self._lock:
            sample(
                self.model,
                self.encoder,
                [spec],
                frames=self.config.frames,
                steps=1,
                method="euler",
                text_scale=self.text_scale,
                cameo_scale=self.cameo_scale,
                shift=self.shift,
                device=self.device,
            )

    def frames_for(self, req: GenerationRequest) -> int:
        cfg = self.config
        n = req.frames or (round(req.seconds * self.fps) if req.seconds else cfg.frames)
        n = int(np.ceil(max(n, 1) / cfg.patch_t) * cfg.patch_t)
        return int(min(max(n, cfg.patch_t), 2 * cfg.frames))

    def generate(
        self,
        requests: list[GenerationRequest],
        on_progress: ProgressFn | None = None,
        cancel: threading.Event | Callable[[], bool] | None = None,
    ) -> list[GeneratedClip]:
        """All requests with the same length go through one batched forward pass per step."""
        if not requests:
            return []
        groups: dict[int, list[int]] = {}
        for i, r in enumerate(requests):
            groups.setdefault(self.frames_for(r), []).append(i)
        chunks = [
            (T, idx[s : s + self.max_batch])
            for T, idx in groups.items()
            for s in range(0, len(idx), self.max_batch)
        ]
        results: list[GeneratedClip | None] = [None] * len(requests)
        chunk_specs = [[self._spec(requests[i]) for i in idx] for _T, idx in chunks]
        # a two-pass chunk reports twice the steps (sampler.sample_steps)
        counts = [
            sample_steps(self.model, specs, self.steps, self.two_pass, T)
            for (T, _idx), specs in zip(chunks, chunk_specs, strict=True)
        ]
        offsets = np.concatenate([[0], np.cumsum(counts)]).astype(int).tolist()
        total = offsets[-1]
        with self._lock:
            for ci, (T, idx) in enumerate(chunks):
                specs = chunk_specs[ci]

                def step_cb(done: int, n: int, _ci=ci) -> bool | None:
                    if on_progress is None:
                        return None
                    return on_progress(offsets[_ci] + done, total)

                t0 = time.perf_counter()
                x = sample(
                    self.model,
                    self.encoder,
                    specs,
                    frames=T,
                    steps=self.steps,
                    method=self.method,
                    text_scale=self.text_scale,
                    cameo_scale=self.cameo_scale,
                    shift=self.shift,
                    guidance_interval=self.guidance_interval,
                    guide_model=self.guide_model,
                    guide_scale=self.guide_scale,
                    on_step=step_cb,
                    cancel=cancel,
                    device=self.device,
                    two_pass=self.two_pass,
                )
                frames = tensor_to_frames(x.cpu())
                dt = time.perf_counter() - t0
                for k, i in enumerate(idx):
                    r = requests[i]
                    results[i] = GeneratedClip(
                        frames[k],
                        self.fps,
                        {
                            "engine": self.name,
                            "prompt": r.prompt,
                            "instructions": r.instructions,
                            "text": specs[k].prompt,
                            "seed": int(r.seed),
                            "frames": T,
                            "height": self.config.height,
                            "width": self.config.width,
                            "steps": self.steps,
                            "method": self.method,
                            "text_scale": self.text_scale,
                            "cameo_scale": self.cameo_scale,
                            "two_pass": self.two_pass,
                            "cameo_refs_used": min(
                                len(specs[k].refs or []), self.config.max_ref_images
                            ),
                            "context_frames_used": r.context_frames is not None,
                            "batch_size": len(idx),
                            "batch_seconds": round(dt, 4),
                            **{f"model_{k2}": v for k2, v in self.info.items()},
                        },
                    )
        return results  # type: ignore[return-value]


# --------------------------------------------------------------------------- weights

_MODELS: dict[str, tuple[SpaceTimeDiT, dict]] = {}


def load_model(path: str | Path, device: str = "cpu") -> tuple[SpaceTimeDiT, dict]:
    """Shipped weights -> (model in fp32, metadata). Cached per path and device."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    path = Path(path)
    key = f"{path.resolve()}|{device}"
    if key not in _MODELS:
        if not path.exists():
            raise EngineUnavailable(
                f"weights not found at {path}; train with `manage.py train_engine` and export "
                "with `manage.py train_engine --export`"
            )
        with safe_open(str(path), "pt") as f:
            meta = dict(f.metadata() or {})
        cfg = ModelConfig.from_dict(json.loads(meta["config"]))
        model = SpaceTimeDiT(cfg)
        state = {k: v.float() for k, v in load_file(str(path)).items()}
        model.load_state_dict(state)
        _MODELS[key] = (model.to(device).eval().requires_grad_(False), meta)
    return _MODELS[key]


# Sampler settings a weights file may carry in its "sampler" metadata (a JSON object).
WEIGHT_SAMPLER_KEYS = frozenset({"two_pass"})


def weight_sampler_defaults(meta: dict) -> dict:
    """The sampler defaults a weights file names, e.g. `two_pass` for weights whose trunk was
    trained with an amodal head (docs/engine-history.md, "Stage 16"). An unknown key or a value of
    the wrong type is an error: a file that asks for a setting this code cannot honour
    should not load as if it had not."""
    raw = meta.get("sampler")
    if not raw:
        return {}
    values = json.loads(raw)
    if not isinstance(values, dict):
        raise ValueError(f"a weights file's sampler metadata is a JSON object, not {raw!r}")
    unknown = sorted(set(values) - WEIGHT_SAMPLER_KEYS)
    if unknown:
        raise ValueError(f"weights name sampler settings this engine does not know: {unknown}")
    if not isinstance(values.get("two_pass", False), bool):
        raise ValueError(f"a weights file's two_pass is true or false, not {values['two_pass']!r}")
    return values


def riff_world(
    config: str | None = None,
    weights: str | Path | None = "default",
    device: str = "cpu",
    text_encoder: str | None = None,
    seed: int = 0,
    guide_weights: str | Path | None = None,
    **sampler_options,
) -> RiffWorldEngine:
    """The built-in engine.

    weights="default": the shipped `weights/riff-world-v0.safetensors`; a path: that file;
    None: random weights for `config` ("tiny" unless given) with the hash text encoder
    (fast, for tests of other modules). `guide_weights` (a path) loads a weaker checkpoint
    for autoguidance, used with `guide_scale` > 0 (see `sampler.sample`).
    """
    if weights is None:
        cfg = CONFIGS[config or "tiny"]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = SpaceTimeDiT(cfg).to(device).eval().requires_grad_(False)
        enc_kind = text_encoder or ("hash" if (config or "tiny") == "tiny" else "minilm")
        info = {"weights": "random", "config": config or "tiny"}
        sampler_options.setdefault("steps", 4)
        sampler_options.setdefault("method", "euler")
    else:
        path = DEFAULT_WEIGHTS if weights == "default" else Path(weights)
        model, meta = load_model(path, device)
        enc_kind = text_encoder or meta.get("text_encoder", "minilm")
        # training steps behind the weights, across runs started from earlier weights
        info = {"weights": path.name, "step": int(meta.get("total_steps", meta.get("step", 0)))}
        if config is not None:
            raise ValueError("config applies only to random weights (weights=None)")
        # the sampler settings the weights were measured with; options given here win
        for key, value in weight_sampler_defaults(meta).items():
            sampler_options.setdefault(key, value)
    info["params"] = count_params(model)
    if guide_weights is not None:
        guide, gmeta = load_model(Path(guide_weights), device)
        sampler_options["guide_model"] = guide
        info["guide"] = Path(guide_weights).name
        info["guide_step"] = int(gmeta.get("total_steps", gmeta.get("step", 0)))
    encoder = TextEncoder(enc_kind, max_tokens=model.cfg.max_text_tokens)
    return RiffWorldEngine(model, encoder, device=device, info=info, **sampler_options)


# backends.clear_engine_cache() calls this: the loaded weights go with the engines built on them
riff_world.cache_clear = _MODELS.clear  # type: ignore[attr-defined]

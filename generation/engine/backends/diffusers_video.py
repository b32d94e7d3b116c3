"""The "diffusers" backend: open text-to-video models (Wan 2.1, LTX-Video, CogVideoX) run
through Hugging Face diffusers, from a local folder an operator provides.

    get_engine("diffusers", family="wan", path="/models/Wan2.1-T2V-1.3B-Diffusers")
    get_engine("diffusers", family="ltx", path="/models/LTX-Video", i2v="same", steps=40)
    get_engine("diffusers", pipeline=pipe)                    # a pipeline object (tests)

Nothing is ever downloaded: `path` (and `i2v_path`) are directories in diffusers'
`save_pretrained` layout, loaded with `local_files_only=True`. What differs between model
families (pipeline classes, the frame-count rule, sizes, defaults) is data, `FAMILIES`, not
branches in the code. With an image-to-video pipeline beside the text-to-video one the engine
continues clips (`max_context_frames` 1: the last frame made becomes the start image) and can
start one from a cameo's reference frame; without one it makes clips from text alone and
refuses cameos (`InputUnsupported`). docs/engine-backends.md describes the protocol.

Only the engine registry imports this module (when a worker builds the engine), so torch and
diffusers are imported here at the top and nowhere else in Riff.
"""

from __future__ import annotations

import json
import math
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageOps

from .base import (
    EngineUnavailable,
    GeneratedClip,
    GenerationRequest,
    InputUnsupported,
    ProgressFn,
)

try:
    import diffusers
except ImportError as exc:  # the registry turns a failed import into EngineUnavailable too
    raise EngineUnavailable(
        "the diffusers backend needs the `diffusers` extra: pip install '.[worker,diffusers]'"
    ) from exc

__all__ = ["FAMILIES", "DiffusersVideoEngine", "ModelFamily", "diffusers_engine"]


@dataclass(frozen=True)
class ModelFamily:
    """What the engine must know of a model family that its diffusers pipeline doesn't say."""

    name: str
    t2v: str  # the text-to-video pipeline class in diffusers
    i2v: str  # the image-to-video pipeline class
    frame_step: int  # valid clip lengths are frame_step * k + 1 (the VAE's temporal stride)
    spatial_multiple: int  # height and width are multiples of this (VAE stride x patch size)
    fps: int
    steps: int
    guidance_scale: float
    height: int  # the default frame size, portrait
    width: int
    # The most frames one call returns: the longest clip the model makes, less the first
    # frame an image-to-video call spends on its start image (so every call can return it).
    max_frames: int
    negative_prompt: bool  # the pipeline takes one
    frame_rate: bool  # the pipeline conditions on the frame rate (its `frame_rate` argument)
    # The image-to-video pipeline is the text-to-video weights (`from_pipe`), not its own.
    i2v_from_t2v: bool
    # One call can start several clips from different images; Wan's pipeline encodes a single
    # start image per call and repeats it over the batch, so its image requests go one by one.
    i2v_batches: bool


FAMILIES: dict[str, ModelFamily] = {
    family.name: family
    for family in (
        ModelFamily(
            name="wan",
            t2v="WanPipeline",
            i2v="WanImageToVideoPipeline",
            frame_step=4,
            spatial_multiple=16,
            fps=16,
            steps=50,
            guidance_scale=5.0,
            height=832,
            width=480,
            max_frames=80,
            negative_prompt=True,
            frame_rate=False,
            i2v_from_t2v=False,
            i2v_batches=False,
        ),
        ModelFamily(
            name="ltx",
            t2v="LTXPipeline",
            i2v="LTXImageToVideoPipeline",
            frame_step=8,
            spatial_multiple=32,
            fps=24,
            steps=50,
            guidance_scale=3.0,
            height=704,
            width=480,
            max_frames=160,
            negative_prompt=True,
            frame_rate=True,
            i2v_from_t2v=True,
            i2v_batches=True,
        ),
        ModelFamily(
            name="cogvideox",
            t2v="CogVideoXPipeline",
            i2v="CogVideoXImageToVideoPipeline",
            frame_step=8,
            spatial_multiple=16,
            fps=8,
            steps=50,
            guidance_scale=6.0,
            height=720,
            width=480,
            max_frames=48,
            negative_prompt=True,
            frame_rate=False,
            i2v_from_t2v=False,
            i2v_batches=True,
        ),
    )
}

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
OFFLOADS = ("none", "model", "sequential")
# A requested ratio within this share of the default size's (or its transpose's) is made at
# that size: the checkpoints were trained there (Wan: 832x480 and 480x832).
RATIO_TOLERANCE = 0.05


def _ratio(aspect: str, size: str) -> float | None:
    """width / height the request asks for: its exact size ("720x1280") wins over its aspect
    ("9:16"); None when it asks for neither (or says something unreadable)."""
    for text, sep in ((size, "x"), (aspect, ":")):
        first, found, second = text.lower().partition(sep)
        if found and first.isdigit() and second.isdigit() and int(first) and int(second):
            return int(first) / int(second)
    return None


def _round_to(value: float, multiple: int) -> int:
    return max(multiple, round(value / multiple) * multiple)


def _image(frame: Any) -> Image.Image:
    if isinstance(frame, Image.Image):
        return frame.convert("RGB")
    array = np.asarray(frame)
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=-1)
    return Image.fromarray(array[..., :3].astype(np.uint8))


@dataclass
class _Plan:
    """One request as a pipeline call sees it."""

    index: int
    text: str
    seed: int
    frames: int  # returned
    num_frames: int  # asked of the pipeline: a valid length >= frames (+ 1 with a start image)
    height: int
    width: int
    image: Image.Image | None
    start: str  # "context", "cameo" or "" (no start image)

    def key(self, batches_images: bool) -> tuple:
        """Requests with equal keys go through one pipeline call."""
        image = "image" if self.image is not None else ""
        if image and not batches_images:
            image = f"image-{self.index}"
        return (self.num_frames, self.height, self.width, image)


class DiffusersVideoEngine:
    """A loaded text-to-video pipeline (and optionally its image-to-video sibling) behind the
    `base.Engine` protocol. One generation runs at a time per instance."""

    def __init__(
        self,
        pipeline: Any,
        family: ModelFamily,
        *,
        i2v_pipeline: Any = None,
        name: str = "",
        fps: int | None = None,
        height: int | None = None,
        width: int | None = None,
        steps: int | None = None,
        guidance_scale: float | None = None,
        negative_prompt: str = "",
        max_frames: int | None = None,
        max_batch: int = 4,
        info: dict | None = None,
    ):
        if negative_prompt and not family.negative_prompt:
            raise EngineUnavailable(f"{family.name} models take no negative prompt")
        multiple = family.spatial_multiple
        self.height = int(height or family.height)
        self.width = int(width or family.width)
        if self.height % multiple or self.width % multiple:
            raise EngineUnavailable(
                f"{family.name} frames are multiples of {multiple} pixels, not "
                f"{self.height}x{self.width} (height x width)"
            )
        trained = _trained_size(i2v_pipeline)
        if trained is not None and trained != (self.height, self.width):
            # context frames come at (height, width): the model must continue them there
            raise EngineUnavailable(
                f"this image-to-video checkpoint makes {trained[0]}x{trained[1]} frames only "
                f"(height x width): set height={trained[0]}, width={trained[1]}"
            )
        self.pipeline, self.i2v_pipeline, self.family = pipeline, i2v_pipeline, family
        self.name = name or f"diffusers-{family.name}"
        self.fps = int(fps or family.fps)
        self.steps = int(steps or family.steps)
        self.guidance_scale = float(
            family.guidance_scale if guidance_scale is None else guidance_scale
        )
        self.negative_prompt = negative_prompt
        self.max_frames = int(max_frames or family.max_frames)
        self.max_batch = max(1, int(max_batch))
        self.info = info or {}
        for pipe in (pipeline, i2v_pipeline):
            if pipe is not None:
                pipe.set_progress_bar_config(disable=True)
        self._lock = threading.Lock()  # one generation at a time per engine instance

    @property
    def max_context_frames(self) -> int:
        """1 with an image-to-video pipeline (the last frame made is the next start image),
        0 without: then the worker sends no context and segments are independent clips."""
        return 1 if self.i2v_pipeline is not None else 0

    # ------------------------------------------------------------------ planning

    def frame_size(self, *, aspect: str = "", size: str = "") -> tuple[int, int]:
        """(height, width) this engine makes for a job of that shape (`base.frame_size_of`):
        about the default pixel area at the ratio asked for, in multiples of the family's
        spatial multiple (the default size itself, or its transpose, when the ratio is close:
        the checkpoints were trained there); a checkpoint whose image-to-video model was
        trained at one size only makes that size. The worker hands context frames over at this
        size, so a remix or an extension keeps its aspect."""
        trained = _trained_size(self.i2v_pipeline)
        if trained is not None:
            return trained
        ratio = _ratio(aspect, size)
        if ratio is None:
            return self.height, self.width
        multiple = self.family.spatial_multiple
        for height, width in ((self.height, self.width), (self.width, self.height)):
            if abs(width / height - ratio) <= RATIO_TOLERANCE * ratio:
                return height, width
        side = math.sqrt(self.height * self.width / ratio)
        return _round_to(side, multiple), _round_to(side * ratio, multiple)

    def _size(self, request: GenerationRequest, start: str) -> tuple[int, int]:
        """(height, width) for the request: the context frames' own size when it continues
        them (the worker made them `frame_size` for the job; an extension is joined onto its
        source's frames, so the two must match), else `frame_size` for its shape (and always
        the trained size of a checkpoint that has one)."""
        if start == "context" and _trained_size(self.i2v_pipeline) is None:
            multiple = self.family.spatial_multiple
            height, width = np.asarray(request.context_frames).shape[1:3]
            return _round_to(height, multiple), _round_to(width, multiple)
        return self.frame_size(aspect=request.aspect, size=request.size)

    def _frames(self, request: GenerationRequest) -> int:
        wanted = request.frames or (round(request.seconds * self.fps) if request.seconds else 0)
        return int(min(max(int(wanted or self.max_frames), 1), self.max_frames))

    def _start_image(self, request: GenerationRequest) -> tuple[Image.Image | None, str]:
        """The image a clip starts from, and where it came from.

        Raises InputUnsupported `cameo_unsupported` for cameos the model cannot take: without
        an image-to-video pipeline at all, or beside another video's context frames (one
        start image only; a later segment of the job's own clip continues its last frame, in
        which the cameo already is)."""
        cameos = list(request.cameo_images or [])
        context = request.context_frames
        if cameos and self.i2v_pipeline is None:
            raise InputUnsupported(
                "cameo_unsupported",
                f"The {self.name} model makes videos from text alone and can't put a cameo "
                "in them. Remove the @mention, or choose a model that takes cameos.",
            )
        if cameos and context is not None and len(context) and not request.continues:
            raise InputUnsupported(
                "cameo_unsupported",
                f"The {self.name} model starts a clip from one image, so it can't put a cameo "
                "into a video that continues another one. Make a new video with the cameo "
                "instead of a remix or an extension.",
            )
        if self.i2v_pipeline is None:
            return None, ""  # context frames a caller sent anyway are ignored (protocol)
        if context is not None and len(context):
            return _image(np.asarray(context)[-1]), "context"
        if cameos:
            return _image(cameos[0]), "cameo"
        return None, ""

    def _plan(self, index: int, request: GenerationRequest) -> _Plan:
        image, start = self._start_image(request)
        height, width = self._size(request, start)
        if image is not None and image.size != (width, height):
            # a cameo photo keeps its proportions: cropped to fill, never squashed
            image = ImageOps.fit(image, (width, height), Image.Resampling.BICUBIC)
        frames = self._frames(request)
        # The first frame of an image-to-video clip is the start image again: ask one more.
        need = frames + (1 if image is not None else 0)
        step = self.family.frame_step
        text = request.prompt.strip()
        if request.instructions.strip():
            text = f"{text}. {request.instructions.strip()}" if text else request.instructions
        return _Plan(
            index=index,
            text=text,
            seed=int(request.seed),
            frames=frames,
            num_frames=math.ceil((need - 1) / step) * step + 1,
            height=height,
            width=width,
            image=image,
            start=start,
        )

    # ---------------------------------------------------------------- generation

    def warm(self) -> None:
        """One step of a one-frame clip at the smallest size: loads the weights onto the
        device and sets up the kernels, a fraction of a real call's time even on a CPU."""
        side = self.family.spatial_multiple
        with self._lock:
            self.pipeline(
                prompt="warm up",
                height=side,
                width=side,
                num_frames=1,
                num_inference_steps=1,
                guidance_scale=1.0,
                output_type="np",
            )

    def generate(
        self, requests: list[GenerationRequest], on_progress: ProgressFn | None = None
    ) -> list[GeneratedClip]:
        """One clip per request, in order. Compatible requests (same length, size, and with or
        without a start image) go through one pipeline call, up to `max_batch`. `on_progress`
        is called after every denoising step of every call (done, total) and whatever it
        raises stops the work between two steps and propagates unchanged.

        Raises InputUnsupported before any work when a request's inputs can't be used."""
        plans = [self._plan(i, r) for i, r in enumerate(requests)]
        groups: dict[tuple, list[_Plan]] = {}
        for plan in plans:
            groups.setdefault(plan.key(self.family.i2v_batches), []).append(plan)
        chunks = [
            group[start : start + self.max_batch]
            for group in groups.values()
            for start in range(0, len(group), self.max_batch)
        ]
        total = len(chunks) * self.steps
        results: list[GeneratedClip | None] = [None] * len(requests)
        with self._lock:
            for number, chunk in enumerate(chunks):
                began = time.perf_counter()
                videos = self._call(chunk, number * self.steps, total, on_progress)
                seconds = round(time.perf_counter() - began, 4)
                for plan, video in zip(chunk, videos, strict=True):
                    skip = 1 if plan.image is not None else 0
                    frames = video[skip : skip + plan.frames]
                    results[plan.index] = GeneratedClip(
                        frames,
                        self.fps,
                        {
                            "engine": self.name,
                            "family": self.family.name,
                            "prompt": requests[plan.index].prompt,
                            "text": plan.text,
                            "seed": plan.seed,
                            "frames": len(frames),
                            "pipeline_frames": plan.num_frames,
                            "height": plan.height,
                            "width": plan.width,
                            "steps": self.steps,
                            "guidance_scale": self.guidance_scale,
                            "start_image": plan.start,
                            "batch_size": len(chunk),
                            "batch_seconds": seconds,
                            **{f"model_{key}": value for key, value in self.info.items()},
                        },
                    )
        return results  # type: ignore[return-value]

    def _call(
        self, chunk: list[_Plan], offset: int, total: int, on_progress: ProgressFn | None
    ) -> np.ndarray:
        """One pipeline call for `chunk`: uint8 [B, T, H, W, 3]."""
        first = chunk[0]
        steps = self.steps

        def step_end(_pipe, index: int, _timestep, _tensors: dict) -> dict:
            # diffusers calls this after each step and lets what it raises out of __call__
            if on_progress is not None:
                on_progress(offset + min(index + 1, steps), total)
            return {}

        arguments: dict[str, Any] = {
            "prompt": [plan.text for plan in chunk],
            "height": first.height,
            "width": first.width,
            "num_frames": first.num_frames,
            "num_inference_steps": steps,
            "guidance_scale": self.guidance_scale,
            # CPU generators: the same request makes the same noise on any device
            "generator": [torch.Generator("cpu").manual_seed(plan.seed) for plan in chunk],
            "output_type": "np",
            "callback_on_step_end": step_end,
        }
        if self.family.negative_prompt:
            arguments["negative_prompt"] = [self.negative_prompt] * len(chunk)
        if self.family.frame_rate:
            arguments["frame_rate"] = self.fps
        pipe = self.pipeline
        if first.image is not None:
            pipe = self.i2v_pipeline
            images = [plan.image for plan in chunk]
            # a family that doesn't batch images takes exactly one (its chunks have one plan)
            arguments["image"] = images if self.family.i2v_batches else first.image
        video = np.asarray(pipe(**arguments).frames, dtype=np.float32)
        return np.clip(np.rint(video * 255.0), 0, 255).astype(np.uint8)


def _trained_size(pipe: Any) -> tuple[int, int] | None:
    """The one (height, width) a pipeline can make, when its transformer learned its
    positional embeddings for a single size (CogVideoX-5B-I2V); None when any size works."""
    config = getattr(getattr(pipe, "transformer", None), "config", None)
    if config is None or not getattr(config, "use_learned_positional_embeddings", False):
        return None
    scale = int(pipe.vae_scale_factor_spatial)
    return int(config.sample_height) * scale, int(config.sample_width) * scale


# ------------------------------------------------------------------------------ factory


def _family_of(family: str | None, path: Path | None, pipeline: Any) -> ModelFamily:
    """The family named, or the one whose text-to-video class the pipeline (or the saved
    folder's model_index.json) is."""
    if family is not None:
        if family not in FAMILIES:
            raise EngineUnavailable(
                f"unknown diffusers model family {family!r}; known: {sorted(FAMILIES)}"
            )
        return FAMILIES[family]
    if pipeline is not None:
        class_name = type(pipeline).__name__
    else:
        class_name = _saved_class(path) if path is not None else ""
    for known in FAMILIES.values():
        if known.t2v == class_name:
            return known
    raise EngineUnavailable(
        f"can't tell the model family of {class_name or 'the pipeline'}; "
        f"set family= to one of {sorted(FAMILIES)}"
    )


def _saved_class(path: Path) -> str:
    """The pipeline class a `save_pretrained` folder holds (its model_index.json)."""
    index = path / "model_index.json"
    try:
        return str(json.loads(index.read_text())["_class_name"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise EngineUnavailable(
            f"no diffusers pipeline at {path}: expected a folder written by save_pretrained "
            f"(with model_index.json) ({exc.__class__.__name__}: {exc})"
        ) from exc


def _load(path: str | Path, class_name: str, dtype: torch.dtype) -> Any:
    """The pipeline `class_name` from a local folder, never the network.

    Raises EngineUnavailable for a folder that isn't one, holds another pipeline class, or
    fails to load."""
    folder = Path(path)
    saved = _saved_class(folder)
    if saved != class_name:
        raise EngineUnavailable(f"{folder} holds a {saved}, not the {class_name} expected here")
    try:
        return getattr(diffusers, class_name).from_pretrained(
            str(folder), dtype=dtype, local_files_only=True
        )
    except Exception as exc:  # anything a bad folder raises means the same: can't run here
        raise EngineUnavailable(
            f"the {class_name} at {folder} could not be loaded: {exc.__class__.__name__}: {exc}"
        ) from exc


def _device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise EngineUnavailable(f"device {device!r} asked for, but this machine has no CUDA GPU")
    return device


def _place(pipe: Any, device: str, offload: str, dtype: torch.dtype | None) -> None:
    if dtype is not None:
        pipe.to(dtype=dtype)
    if offload == "model":
        pipe.enable_model_cpu_offload(device=device)
    elif offload == "sequential":
        pipe.enable_sequential_cpu_offload(device=device)
    else:
        pipe.to(device)


def diffusers_engine(
    family: str | None = None,
    path: str | Path | None = None,
    i2v_path: str | Path | None = None,
    i2v: str | None = None,
    pipeline: Any = None,
    i2v_pipeline: Any = None,
    dtype: str | None = None,
    device: str = "auto",
    offload: str = "none",
    **options: Any,
) -> DiffusersVideoEngine:
    """The engine for a local diffusers checkpoint (`path`) or a pipeline object (`pipeline`).

    `family` ("wan", "ltx", "cogvideox") is read from the pipeline's class when not given.
    Image-to-video, for cameos and continued clips: `i2v_path` (a second local folder: Wan and
    CogVideoX ship separate weights), `i2v="same"` (LTX: made from the text-to-video
    components) or `i2v_pipeline`. `dtype` "bf16" | "fp16" | "fp32" (default: bf16 on a GPU,
    fp32 on a CPU; a pipeline object keeps its own unless given), `device` "auto" | "cpu" |
    "cuda[:n]", `offload` "none" | "model" | "sequential" (CPU offload between uses, GPU only).
    The rest (`steps`, `guidance_scale`, `negative_prompt`, `fps`, `height`, `width`,
    `max_frames`, `max_batch`, `name`) are `DiffusersVideoEngine`'s.

    Raises EngineUnavailable when it can't run on this machine: no pipeline given, a folder
    that isn't a saved pipeline of the family, no GPU for `device` or `offload`."""
    if offload not in OFFLOADS:
        raise EngineUnavailable(f"offload is one of {OFFLOADS}, not {offload!r}")
    if dtype is not None and dtype not in DTYPES:
        raise EngineUnavailable(f"dtype is one of {sorted(DTYPES)}, not {dtype!r}")
    if (pipeline is None) == (path is None):
        raise EngineUnavailable("the diffusers backend needs one of path= or pipeline=")
    device = _device(device)
    if offload != "none" and not device.startswith("cuda"):
        raise EngineUnavailable(
            f"offload={offload!r} moves weights between CPU and GPU memory: it needs a CUDA "
            "GPU, and this worker runs on the CPU; use offload='none'"
        )
    path = Path(path) if path is not None else None
    kind = _family_of(family, path, pipeline)
    torch_dtype = DTYPES[dtype] if dtype else None
    if pipeline is None:
        load_dtype = torch_dtype or (torch.bfloat16 if device.startswith("cuda") else torch.float32)
        pipeline = _load(path, kind.t2v, load_dtype)
    elif not isinstance(pipeline, getattr(diffusers, kind.t2v)):
        raise EngineUnavailable(f"a {kind.name} engine needs a {kind.t2v}, not {pipeline!r}")
    if i2v is not None and i2v != "same":
        raise EngineUnavailable(f"i2v is 'same' or not given, not {i2v!r}")
    if sum(x is not None for x in (i2v_path, i2v, i2v_pipeline)) > 1:
        raise EngineUnavailable("give one of i2v_path=, i2v='same' or i2v_pipeline=")
    if i2v == "same":
        if not kind.i2v_from_t2v:
            raise EngineUnavailable(
                f"{kind.name} has separate image-to-video weights: give their folder as i2v_path"
            )
        # the same modules, not copies; from_pipe casts to fp32 unless told the dtype
        i2v_pipeline = getattr(diffusers, kind.i2v).from_pipe(pipeline, dtype=pipeline.dtype)
    elif i2v_path is not None:
        i2v_pipeline = _load(i2v_path, kind.i2v, pipeline.dtype)
    elif i2v_pipeline is not None and not isinstance(i2v_pipeline, getattr(diffusers, kind.i2v)):
        raise EngineUnavailable(f"i2v_pipeline must be a {kind.i2v}, not {i2v_pipeline!r}")
    try:
        _place(pipeline, device, offload, torch_dtype)
        if i2v_pipeline is not None:
            # shared modules (i2v="same") are moved twice, which costs nothing; with offload
            # each pipeline needs hooks of its own
            _place(i2v_pipeline, device, offload, torch_dtype)
    except (RuntimeError, ValueError) as exc:  # e.g. out of GPU memory, accelerate missing
        raise EngineUnavailable(f"the pipeline can't be placed on {device}: {exc}") from exc
    info = {
        "family": kind.name,
        "dtype": str(pipeline.dtype).removeprefix("torch."),
        "device": device,
        "offload": offload,
        "path": str(path) if path is not None else "",
        "i2v": str(i2v_path or i2v or ("pipeline" if i2v_pipeline is not None else "")),
    }
    return DiffusersVideoEngine(pipeline, kind, i2v_pipeline=i2v_pipeline, info=info, **options)

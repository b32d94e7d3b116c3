"""Euler / Heun sampling of the rectified flow with classifier-free guidance.

Guidance with separate text and cameo scales (all branches in ONE batched forward pass):

    v = v(null) + s_text * (v(text) - v(null)) + s_cameo * (v(text, cameo) - v(text))

Autoguidance (Karras et al., "Guiding a Diffusion Model with a Bad Version of Itself",
2024) adds a second direction, away from a weaker model given the same conditioning:

    v += s_guide * (v(text, cameo) - v_guide(text, cameo))

where `guide_model` is an earlier, less trained checkpoint of the same world. The idea is
that its errors are the main model's made larger, so the difference points away from them.
Measured on the shipped weights it lost count and permanence at every scale tried
(docs/engine-history.md, Sampling), so `s_guide = 0`, off, is the default.

A model with the sprite pathway (cameos, model.py) composites the sprite after guidance: the
branches' velocities are combined without it, then the clean clip they imply takes the
reference's texels where the fully conditioned branch's layout says the sprite shows. Guidance
steers the trunk; the sprite itself is copied, never extrapolated (a cameo scale of 2 would
otherwise push its colours past the reference's).

Guidance can be limited to an interval of flow times (`guidance_interval=(lo, hi)`): outside
it only the fully conditioned branch is evaluated, so those steps cost a third to a half of a
guided one.

Each request draws its initial noise from its own generator, so a result depends only on its
own prompt, seed and references, never on what else is in the batch.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import torch

from .flow import images_to_tensor, tensor_to_frames


class GenerationCancelled(Exception):
    """Raised between denoising steps when the caller cancels."""


@dataclass
class SampleSpec:
    prompt: str
    seed: int
    refs: list[np.ndarray] | None = None  # cameo reference images, uint8 [H, W, 3]
    context: np.ndarray | None = None  # clean context frames uint8 [Tc, H, W, 3]


def _resize(img: np.ndarray, h: int, w: int) -> np.ndarray:
    img = np.asarray(img, dtype=np.uint8)[..., :3]
    if img.shape[:2] == (h, w):
        return img
    from PIL import Image

    return np.asarray(Image.fromarray(img).resize((w, h), Image.BILINEAR), dtype=np.uint8)


def time_grid(steps: int, shift: float = 1.0) -> torch.Tensor:
    t = torch.linspace(1.0, 0.0, steps + 1)
    if shift != 1.0:  # SD3-style shift: more steps at high noise when shift > 1
        t = shift * t / (1 + (shift - 1) * t)
    return t


def second_pass_rows(model, specs: list[SampleSpec], frames: int | None = None) -> list[int]:
    """The requests a two-pass sample generates twice: no cameo reference and no context of
    their own (cameo clips are never continuations in training; a request with context is
    already anchored), and more frames than the model's context holds."""
    cfg = model.cfg
    Tc = cfg.max_context_frames
    if Tc <= 0 or (frames or cfg.frames) <= Tc:
        return []
    return [i for i, s in enumerate(specs) if not s.refs and s.context is None]


def sample_steps(model, specs: list[SampleSpec], steps: int, two_pass: bool, frames=None) -> int:
    """The step count `sample` reports to `on_step` for these specs."""
    return 2 * steps if two_pass and second_pass_rows(model, specs, frames) else steps


@torch.no_grad()
def sample(
    model,
    encoder,
    specs: list[SampleSpec],
    frames: int | None = None,
    steps: int = 24,
    method: str = "heun",
    text_scale: float = 4.0,
    cameo_scale: float = 1.0,
    shift: float = 1.0,
    guidance_interval: tuple[float, float] | None = None,
    guide_model=None,
    guide_scale: float = 0.0,
    on_step: Callable[[int, int], object] | None = None,
    cancel: threading.Event | Callable[[], bool] | None = None,
    device: str | torch.device = "cpu",
    two_pass: bool = False,
) -> torch.Tensor:
    """Returns x0 [B, 3, T, H, W] in [-1, 1] for the specs, in order.

    `two_pass`: generate the clip, then generate it again as the continuation of its own
    first `max_context_frames` frames (the remix conditioning) and keep those frames followed
    by the continuation. One joint pass decides the early and the late frames together; where
    the prompt leaves something open (which way an object moves behind a wall), the late
    frames can settle on the other answer than the early ones. The second pass sees the first
    frames clean. Applies to the requests `second_pass_rows` names; the others are generated
    once and come out as without it. Costs a second pass for those requests
    (docs/engine-history.md, Sampling)."""
    kw = dict(
        steps=steps,
        method=method,
        text_scale=text_scale,
        cameo_scale=cameo_scale,
        shift=shift,
        guidance_interval=guidance_interval,
        guide_model=guide_model,
        guide_scale=guide_scale,
        cancel=cancel,
        device=device,
        on_step=on_step,
    )
    rows = second_pass_rows(model, specs, frames) if two_pass else []
    kw["total_steps"] = 2 * steps if rows else steps
    x = _sample_once(model, encoder, specs, frames, first_step=0, **kw)
    if not rows:
        return x
    Tc = model.cfg.max_context_frames
    first = tensor_to_frames(x[rows, :, :Tc].cpu())  # as the caller would get them
    again = [replace(specs[i], context=first[k]) for k, i in enumerate(rows)]
    x2 = _sample_once(model, encoder, again, frames, first_step=steps, **kw)
    x = x.clone()
    x[rows, :, Tc:] = x2[:, :, : x.shape[2] - Tc]
    return x


def _sample_once(
    model,
    encoder,
    specs: list[SampleSpec],
    frames: int | None,
    steps: int,
    method: str,
    text_scale: float,
    cameo_scale: float,
    shift: float,
    guidance_interval: tuple[float, float] | None,
    guide_model,
    guide_scale: float,
    on_step: Callable[[int, int], object] | None,
    total_steps: int,
    first_step: int,
    cancel: threading.Event | Callable[[], bool] | None,
    device: str | torch.device,
) -> torch.Tensor:
    cfg = model.cfg
    T = frames or cfg.frames
    B = len(specs)
    H, W = cfg.height, cfg.width
    dtype = next(model.parameters()).dtype
    noise = torch.stack(
        [
            torch.randn(cfg.channels, T, H, W, generator=torch.Generator().manual_seed(int(s.seed)))
            for s in specs
        ]
    ).to(device)

    text, tmask, pooled = encoder.batch([s.prompt for s in specs], device=device)
    text = text[:, : cfg.max_text_tokens]
    tmask = tmask[:, : cfg.max_text_tokens]
    R = max(1, cfg.max_ref_images)
    refs = torch.zeros(B, R, cfg.channels, H, W)
    rmask = torch.zeros(B, R, dtype=torch.bool)
    for i, s in enumerate(specs):
        for j, img in enumerate((s.refs or [])[:R]):
            refs[i, j] = images_to_tensor(_resize(img, H, W))
            rmask[i, j] = True
    has_ref = rmask.any(1)
    ctx = ctx_mask = None
    if any(s.context is not None for s in specs):
        Tc = cfg.max_context_frames
        ctx = torch.zeros(B, cfg.channels, Tc, H, W)
        ctx_mask = torch.zeros(B, dtype=torch.bool)
        for i, s in enumerate(specs):
            if s.context is not None:
                c = np.stack([_resize(f, H, W) for f in np.asarray(s.context)[-Tc:]])
                c = np.concatenate([np.repeat(c[:1], Tc - len(c), 0), c]) if len(c) < Tc else c
                ctx[i] = images_to_tensor(c).movedim(0, 1)
                ctx_mask[i] = True
        ctx, ctx_mask = ctx.to(device, dtype), ctx_mask.to(device)

    # branches: [full conditioning | null | text without cameo (only where a cameo exists)]
    ref_idx = torch.nonzero(has_ref).flatten()
    nr = len(ref_idx)
    no_text = torch.zeros_like(tmask)
    all_text = torch.cat([text, text, text[ref_idx]]).to(dtype)
    all_tmask = torch.cat([tmask, no_text, tmask[ref_idx]])
    all_pooled = torch.cat([pooled, torch.zeros_like(pooled), pooled[ref_idx]]).to(dtype)
    all_refs = torch.cat([refs, refs, refs[ref_idx]]).to(device, dtype)
    all_rmask = torch.cat([rmask, torch.zeros_like(rmask), torch.zeros_like(rmask[ref_idx])])
    all_rmask = all_rmask.to(device)
    all_ctx = all_cmask = None
    if ctx is not None:
        all_ctx = torch.cat([ctx, ctx, ctx[ref_idx]])
        all_cmask = torch.cat([ctx_mask, ctx_mask, ctx_mask[ref_idx]])

    def guided(t: float) -> bool:
        if guidance_interval is None:
            return True
        lo, hi = guidance_interval
        return lo <= t <= hi

    use_guide = guide_model is not None and guide_scale != 0.0
    if use_guide:
        gcfg = guide_model.cfg
        if (gcfg.channels, gcfg.height, gcfg.width) != (cfg.channels, H, W):
            raise ValueError("the guide model must draw clips of the main model's size")

    # the sprite pathway composites after guidance (module docstring)
    sprite = nr > 0 and getattr(model, "sprite_mlp", None) is not None

    def evaluate(xx: torch.Tensor, t: float, net=None, layout: bool = False):
        """The model (or `net`) on the first len(xx) branch rows (the first B are full
        conditioning); with `layout`, (velocity without the sprite, sprite layout)."""
        net = model if net is None else net
        n = xx.shape[0]
        tt = torch.full((n,), float(t), device=device, dtype=dtype)
        ctx_n = None if all_ctx is None else all_ctx[:n]
        cmask_n = None if all_cmask is None else all_cmask[:n]
        args = (all_text, all_tmask, all_pooled, all_refs, all_rmask)
        extra = {"return_layout": True, "composite": False} if layout else {}
        out = net(xx.to(dtype), tt, *(a[:n] for a in args), ctx_n, cmask_n, **extra)
        return (out[0].float(), out[1]) if layout else out.float()

    def with_sprite(x: torch.Tensor, v: torch.Tensor, t: float, lay: torch.Tensor):
        """v with the sprite composited into the clean clip it implies, on the requests that
        have a reference (the others are left bit for bit as they are)."""
        tt = max(float(t), cfg.t_min)
        r = ref_idx.to(x.device)
        x0 = model.apply_sprite(x[r] - v[r] * tt, lay[r].float(), all_refs[r, 0], all_rmask[r, 0])
        v = v.clone()
        v[r] = (x[r] - x0) / tt
        return v

    def velocity(x: torch.Tensor, t: float) -> torch.Tensor:
        if not guided(t):  # conditional branch only
            return evaluate(x, t)
        xs = torch.cat([x, x, x[ref_idx]])
        v, lay = evaluate(xs, t, layout=True) if sprite else (evaluate(xs, t), None)
        v_full, v_null = v[:B], v[B : 2 * B]
        v_txt = v_full.clone()
        if nr:
            v_txt[ref_idx] = v[2 * B :]
        out = v_null + text_scale * (v_txt - v_null) + cameo_scale * (v_full - v_txt)
        if use_guide:
            g = evaluate(x, t, guide_model, layout=sprite)
            out = out + guide_scale * (v_full - (g[0] if sprite else g))
        return with_sprite(x, out, t, lay) if sprite else out

    def cancelled() -> bool:
        if cancel is None:
            return False
        return cancel.is_set() if hasattr(cancel, "is_set") else bool(cancel())

    ts = time_grid(steps, shift)
    x = noise.float()
    for i in range(steps):
        if cancelled():
            raise GenerationCancelled(f"cancelled before step {first_step + i + 1}/{total_steps}")
        t, t_next = float(ts[i]), float(ts[i + 1])
        dt = t_next - t
        v = velocity(x, t)
        if method == "heun" and t_next > 0:
            x_e = x + dt * v
            v2 = velocity(x_e, t_next)
            x = x + dt * 0.5 * (v + v2)
        elif method in ("euler", "heun"):
            x = x + dt * v
        else:
            raise ValueError(f"unknown sampling method {method!r}")
        done = first_step + i + 1
        if on_step is not None and on_step(done, total_steps) is False:
            raise GenerationCancelled(f"cancelled by callback after step {done}/{total_steps}")
    return x.clamp(-1, 1)

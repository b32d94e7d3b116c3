"""Rectified flow: x_t = (1 - t) * x0 + t * noise, the model predicts v = noise - x0.

t = 0 is data, t = 1 is pure noise; sampling integrates dx/dt = v from t = 1 down to 0.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F


def frames_to_tensor(frames: np.ndarray) -> torch.Tensor:
    """uint8 [..., T, H, W, 3] -> float [..., 3, T, H, W] in [-1, 1]."""
    x = torch.from_numpy(np.ascontiguousarray(frames)).float() / 127.5 - 1.0
    return x.movedim(-1, -4)


def tensor_to_frames(x: torch.Tensor) -> np.ndarray:
    """float [..., 3, T, H, W] in [-1, 1] -> uint8 [..., T, H, W, 3]."""
    x = ((x.float().clamp(-1, 1) + 1.0) * 127.5).round().to(torch.uint8)
    return x.movedim(-4, -1).cpu().numpy()


def images_to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 [..., H, W, 3] -> float [..., 3, H, W] in [-1, 1]."""
    x = torch.from_numpy(np.array(images, copy=True)).float() / 127.5 - 1.0
    return x.movedim(-1, -3)


def sample_t(
    n: int,
    generator: torch.Generator | None = None,
    mean: float = 0.0,
    std: float = 1.0,
    device="cpu",
) -> torch.Tensor:
    """Logit-normal flow times in (0, 1)."""
    z = torch.randn(n, generator=generator) * std + mean
    return torch.sigmoid(z).to(device)


@dataclass
class Batch:
    x0: torch.Tensor  # [B, 3, T, H, W] clean video in [-1, 1]
    text: torch.Tensor  # [B, L, 384]
    text_mask: torch.Tensor  # [B, L]
    pooled: torch.Tensor  # [B, 384]
    refs: torch.Tensor | None = None  # [B, R, 3, H, W]
    ref_mask: torch.Tensor | None = None  # [B, R]
    context: torch.Tensor | None = None
    context_mask: torch.Tensor | None = None
    # per-voxel loss weight [B, 1, T, H, W] (None: the plain MSE); see `flow_loss`
    weight: torch.Tensor | None = None
    # cameo batches, for the sprite pathway's own targets (`sprite_loss`): which pixels show
    # the sprite, bool [B, T, H, W], and the sprite square per frame (cx, cy, r), [B, T, 3]
    sprite_shows: torch.Tensor | None = None
    sprite_box: torch.Tensor | None = None
    sprite_weight: float = 1.0
    # where objects are, the wall ignored, bool [B, T, H, W] (world.amodal_mask), and the
    # weight of the model's amodal head's loss (`amodal_loss`); None / 0: not trained
    amodal: torch.Tensor | None = None
    amodal_weight: float = 0.0

    def to(self, device) -> Batch:
        def mv(v):
            return v.to(device) if torch.is_tensor(v) else v

        return Batch(**{k: mv(v) for k, v in self.__dict__.items()})


def flow_loss(
    model,
    batch: Batch,
    t: torch.Tensor | None = None,
    noise: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Velocity MSE over the video voxels only (reference/context tokens are never targets).

    With `batch.weight` each voxel's squared error is weighted and the sum divided by the sum
    of the weights, so the loss stays on the plain MSE's scale (a weight of all ones is it)."""
    x0 = batch.x0
    B = x0.shape[0]
    if t is None:
        t = sample_t(B, generator).to(x0.device)
    if noise is None:
        noise = torch.randn(x0.shape, generator=generator).to(x0.device)
    tt = t.view(B, 1, 1, 1, 1).to(x0.dtype)
    xt = (1 - tt) * x0 + tt * noise
    v, layout, amodal = model(
        xt,
        t,
        batch.text,
        batch.text_mask,
        batch.pooled,
        batch.refs,
        batch.ref_mask,
        batch.context,
        batch.context_mask,
        return_amodal=True,
    )
    if batch.weight is None:
        loss = F.mse_loss(v.float(), (noise - x0).float())
    else:
        err = (v.float() - (noise - x0).float()).square()
        w = batch.weight.float().expand_as(err)
        loss = (err * w).sum() / w.sum()
    if layout is not None and batch.sprite_shows is not None and batch.sprite_weight:
        keep = batch.ref_mask[:, 0] if batch.ref_mask is not None else None
        aux = sprite_loss(layout, batch.sprite_shows, batch.sprite_box, keep)
        loss = loss + batch.sprite_weight * aux
    if amodal is not None and batch.amodal is not None and batch.amodal_weight:
        loss = loss + batch.amodal_weight * amodal_loss(amodal, batch.amodal)
    return loss


def amodal_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Balanced binary cross-entropy of the amodal head's logits [B, T, H, W] against where
    objects are, the wall ignored (bool [B, T, H, W]): per sample, the mean over the object
    voxels and the mean over the rest count a half each (objects are a few per cent of the
    voxels; a plain mean would be met by saying "no object" everywhere). Unlike the sprite
    loss it reaches the trunk: that is its purpose."""
    bce = F.binary_cross_entropy_with_logits(logits.float(), target.float(), reduction="none")
    pos = target.float()
    neg = 1.0 - pos
    dims = (1, 2, 3)
    on = (bce * pos).sum(dims) / pos.sum(dims).clamp(min=1.0)
    off = (bce * neg).sum(dims) / neg.sum(dims).clamp(min=1.0)
    return (0.5 * (on + off)).mean()


def sprite_loss(
    layout: torch.Tensor,
    shows: torch.Tensor,
    box: torch.Tensor,
    keep: torch.Tensor | None = None,
) -> torch.Tensor:
    """The sprite pathway's own targets, from the world's layout of each cameo clip: alpha
    (binary cross-entropy over every voxel: does the sprite show here) and the frame's square
    (smooth-L1 in pixels on its centre and half-size, over the voxels that show it), averaged
    over the samples in `keep` (those whose reference was not dropped).

    layout: [B, 4, T, H, W] raw (model.sprite_box); shows: bool [B, T, H, W]; box: [B, T, 3]
    (cx, cy, r) in pixels. The pathway learns from these alone: the flow loss does not reach
    it (the sprite is read with nearest sampling, and the composite is detached)."""
    from .model import sprite_box

    B, _, T, H, W = layout.shape
    target = shows.float()
    bce = F.binary_cross_entropy_with_logits(layout[:, 0].float(), target, reduction="none")
    guess = sprite_box(layout, H, W)  # [B, 3, T, H, W]
    truth = box.float().permute(0, 2, 1)[..., None, None].expand_as(guess)
    err = F.smooth_l1_loss(guess, truth, reduction="none", beta=1.0).sum(1)
    per = bce.mean((1, 2, 3)) + (err * target).sum((1, 2, 3)) / target.sum((1, 2, 3)).clamp(min=1.0)
    if keep is None:
        return per.mean()
    k = keep.float()
    return (per * k).sum() / k.sum().clamp(min=1.0)


def drop_conditions(
    batch: Batch, p_text: float, p_ref: float, generator: torch.Generator | None = None
) -> Batch:
    """Classifier-free guidance training: null the prompt / cameo of random samples."""
    B = batch.x0.shape[0]
    keep_text = torch.rand(B, generator=generator) >= p_text
    tm = batch.text_mask & keep_text[:, None].to(batch.text_mask.device)
    pooled = batch.pooled * keep_text[:, None].to(batch.pooled)
    rm = batch.ref_mask
    if rm is not None:
        keep_ref = torch.rand(B, generator=generator) >= p_ref
        rm = rm & keep_ref[:, None].to(rm.device)
    return replace(batch, text_mask=tm, pooled=pooled, ref_mask=rm)

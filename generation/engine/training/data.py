"""The training data: a ring of pre-rendered clips from the procedural world, refreshed a few
at a time, and the world those clips are drawn from."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from ..flow import Batch, frames_to_tensor, images_to_tensor
from ..model import ModelConfig
from ..text import TextEncoder
from ..world import (
    EVAL_SEED_BASE,
    WorldConfig,
    amodal_mask,
    foreground_mask,
    make_clip,
    sprite_layout,
)
from .config import TrainConfig


class EvalSeedError(ValueError):
    """A training clip was asked for with a seed of the evaluation's range."""


def check_training_seeds(first: int, count: int) -> None:
    """Raise EvalSeedError unless the seeds first .. first + count - 1 all lie below
    world.EVAL_SEED_BASE, where the evaluation's clips begin (a run with --seed 10 or more
    would start its pool at 10**9: the very clips it is later scored on)."""
    if first < 0 or first + count > EVAL_SEED_BASE:
        raise EvalSeedError(
            f"training seeds {first} .. {first + count - 1} reach the evaluation's seeds "
            f"(>= {EVAL_SEED_BASE}); pick a smaller --seed"
        )


def pool_seeds(tc: TrainConfig, steps: int) -> tuple[int, int]:
    """(first, last): bounds on the seeds a run of `tc` can have drawn training clips from by
    step `steps`, over any number of resumes. Each start at step s fills its pool from
    `tc.seed * 10**8 + 7 * s` (loop.train) and refreshes refresh_count clips every
    refresh_every steps; the bound adds the most of each. The exported weights record it
    (checkpoints.export_weights); a test holds a run's seeds inside it."""
    first = tc.seed * 10**8
    refreshes = steps // tc.refresh_every + 1
    return first, first + 7 * steps + tc.pool_size + refreshes * tc.refresh_count - 1


def world_config(tc: TrainConfig, mcfg: ModelConfig) -> WorldConfig:
    """The world the training clips are drawn from: the model's clip size, the run's wall share."""
    wcfg = WorldConfig(frames=mcfg.frames, height=mcfg.height, width=mcfg.width)
    if tc.p_wall is not None:
        wcfg = replace(wcfg, p_occluder=tc.p_wall)
    if tc.p_multi is not None:
        wcfg = replace(wcfg, p_multi=tc.p_multi)
    if tc.apart:
        wcfg = replace(wcfg, apart=True)
    return wcfg


def _is_cameo(seed: int, p: float) -> bool:
    return (seed * 2654435761 % 1000) < p * 1000


def _is_context(seed: int, p: float) -> bool:
    return (seed * 40503 + 17) % 997 < p * 997


class ClipPool:
    """A ring of pre-rendered training clips, refreshed a few at a time."""

    def __init__(
        self,
        size: int,
        wcfg: WorldConfig,
        p_cameo: float,
        first_seed: int = 0,
        progress: bool = True,
        p_context: float = 0.0,
        context_frames: int = 4,
        amodal: bool = False,
    ):
        T, H, W = wcfg.frames, wcfg.height, wcfg.width
        self.wcfg, self.p_cameo, self.p_context = wcfg, p_cameo, p_context
        # context clips are ordinary clips simulated `context_frames` longer
        # (`make_clip(extra_frames=)`); the first frames become the clean context and the rest
        # the target, so the model learns to continue a clip at the pace clips have
        self.context_frames = context_frames
        self.frames = np.zeros((size, T, H, W, 3), np.uint8)
        self.refs = np.zeros((size, 1, H, W, 3), np.uint8)
        self.has_ref = np.zeros(size, bool)
        self.ctx = np.zeros((size, context_frames, H, W, 3), np.uint8)
        self.has_ctx = np.zeros(size, bool)
        self.fg = np.zeros((size, T, H, W), bool)  # the target frames' foreground
        # cameo clips: where the sprite shows and its square per frame (flow.sprite_loss)
        n_sprite = size if p_cameo > 0 else 0
        self.sprite_shows = np.zeros((n_sprite, T, H, W), bool)
        self.sprite_box = np.ones((n_sprite, T, 3), np.float32)
        # the target frames' objects, the wall ignored (world.amodal_mask), when trained
        self.amodal = np.zeros((size if amodal else 0, T, H, W), bool)
        self.captions = [""] * size
        check_training_seeds(first_seed, size)  # before rendering a single clip
        self.first_seed = self.next_seed = first_seed
        self.cursor = 0
        it = range(size)
        if progress:
            from tqdm import tqdm

            it = tqdm(it, desc="world clips", mininterval=5)
        for i in it:
            self._fill(i)

    @property
    def seed_range(self) -> tuple[int, int]:
        """(first, last) seed this pool has drawn a clip from."""
        return self.first_seed, self.next_seed - 1

    def _fill(self, i: int) -> None:
        seed = self.next_seed
        check_training_seeds(seed, 1)  # refreshes move on past the first pool's seeds
        self.next_seed += 1
        cameo = _is_cameo(seed, self.p_cameo)
        with_ctx = not cameo and _is_context(seed, self.p_context)
        clip = make_clip(
            seed,
            self.wcfg,
            split="train",
            cameo=True if cameo else None,
            extra_frames=self.context_frames if with_ctx else 0,
        )
        nc = self.ctx.shape[1]
        if with_ctx:
            self.ctx[i] = clip.frames[:nc]
            self.frames[i] = clip.frames[nc:]
        else:
            self.frames[i] = clip.frames
        if len(self.amodal):
            self.amodal[i] = amodal_mask(clip, self.wcfg)[nc if with_ctx else 0 :]
        self.fg[i] = foreground_mask(self.frames[i], clip.spec.background)
        self.has_ctx[i] = with_ctx
        self.captions[i] = clip.caption
        self.has_ref[i] = bool(clip.reference_images)
        if clip.reference_images:
            self.refs[i, 0] = clip.reference_images[0]
            self.sprite_shows[i], self.sprite_box[i] = sprite_layout(clip, self.wcfg)

    def refresh(self, n: int) -> list[str]:
        for _ in range(n):
            self._fill(self.cursor)
            self.cursor = (self.cursor + 1) % len(self.captions)
        return self.captions

    def batch(
        self,
        idx: np.ndarray,
        encoder: TextEncoder,
        max_tokens: int,
        device,
        refs: bool = True,
        context: bool = False,
        fg_weight: float = 1.0,
        sprite_weight: float = 1.0,
        amodal_weight: float = 0.0,
    ) -> Batch:
        text, tmask, pooled = encoder.batch([self.captions[i] for i in idx])
        sprite = refs and len(self.sprite_shows) > 0
        weight = None
        if fg_weight != 1.0:
            weight = 1.0 + (fg_weight - 1.0) * torch.from_numpy(self.fg[idx]).float()[:, None]
        return Batch(
            x0=frames_to_tensor(self.frames[idx]),
            text=text[:, :max_tokens],
            text_mask=tmask[:, :max_tokens],
            pooled=pooled,
            refs=images_to_tensor(self.refs[idx]) if refs else None,
            ref_mask=torch.from_numpy(self.has_ref[idx])[:, None] if refs else None,
            context=frames_to_tensor(self.ctx[idx]) if context else None,
            context_mask=torch.from_numpy(self.has_ctx[idx]) if context else None,
            weight=weight,
            sprite_shows=torch.from_numpy(self.sprite_shows[idx]) if sprite else None,
            sprite_box=torch.from_numpy(self.sprite_box[idx]) if sprite else None,
            sprite_weight=sprite_weight,
            amodal=torch.from_numpy(self.amodal[idx])
            if amodal_weight and len(self.amodal)
            else None,
            amodal_weight=amodal_weight,
        ).to(device)

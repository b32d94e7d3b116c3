"""Training loop: rectified flow on clips from the procedural world.

Resumable: `<out>/ckpt.safetensors` holds model + EMA weights (step and configs in the
metadata), `<out>/optim.pt` the AdamW state, `<out>/loss.csv` the history. Every
`ckpt_every_s` seconds a checkpoint, `loss.png` and `samples.png` are written next to it.
"""

from __future__ import annotations

import copy
import json
import math
import os
import time
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from .flow import Batch, drop_conditions, flow_loss, frames_to_tensor, images_to_tensor
from .model import CONFIGS, ModelConfig, SpaceTimeDiT, count_params
from .text import TextEncoder
from .world import WorldConfig, amodal_mask, foreground_mask, make_clip, sprite_layout

DEFAULT_WEIGHTS = Path(__file__).resolve().parent / "weights" / "riff-world-v0.safetensors"

SAMPLE_PROMPTS = [
    "a purple triangle bounces to the right",  # held-out pair
    "an orange ball falls onto the floor",  # held-out pair
    "two small yellow squares slide to the left",  # held-out pair
    "a small green ball slides behind a grey wall",
    "a red square and a blue triangle jump up",
    "the cameo bounces to the left",
]


@dataclass
class TrainConfig:
    model: str = "small"
    steps: int = 200_000
    batch: int = 32
    lr: float = 4e-4
    # None: constant lr after warm-up. A number: cosine decay from `lr` after warm-up down to
    # `lr_end` at `steps` (a run of known length then ends cooled down, with no hand-lowering
    # of lr across resumes)
    lr_end: float | None = None
    weight_decay: float = 0.01
    warmup: int = 300
    ema: float = 0.999
    grad_clip: float = 1.0
    p_text_drop: float = 0.1
    p_ref_drop: float = 0.3
    p_cameo: float = 0.2
    # remix conditioning: batches whose clips continue a simulation from `max_context_frames`
    # clean frames given as context (the parent's last frames at sampling time)
    p_context: float = 0.15
    # share of sliding/bouncing clips that pass behind the wall (None: the world's default,
    # WorldConfig.p_occluder); raised to train object permanence harder
    p_wall: float | None = None
    # share of wall-free clips with two or three objects (None: the world's default, a half);
    # raised to train counting and keeping same-coloured objects apart harder
    p_multi: float | None = None
    # redraw clips in which two objects of one colour touch in more than two frames (they
    # render as one blob while the caption counts them; a third of the one-colour triples)
    apart: bool = False
    # loss weight of the voxels that are not background (objects and the wall, grown by a
    # pixel) relative to background voxels; 1 is the plain MSE. An object drawn over the wall
    # or two objects merged cost the plain MSE a few dozen voxels out of 16 384
    fg_weight: float = 1.0
    pool_size: int = 12_000
    refresh_every: int = 50
    refresh_count: int = 64
    ckpt_every_s: float = 300.0
    sample_steps: int = 20
    seed: int = 0
    text_encoder: str = "minilm"
    text_mode: str | None = None  # override ModelConfig.text_mode ("joint" / "cross")
    # override ModelConfig.head_hidden; with --init-from it grows the loaded model by the MLP
    # output head (new parameters start from their fresh initialisation: a no-op at first)
    head_hidden: int | None = None
    # override ModelConfig.depth; with --init-from it may only grow the loaded model: the new
    # blocks go after the trained ones and start as the identity (adaLN-Zero gates and the
    # cross-attention output are zero-initialised), so the grown model starts where it was
    depth: int | None = None
    # override ModelConfig.sprite_hidden: the sprite pathway for cameos; with --init-from it
    # grows the loaded model by it (nearly off at first: alpha ~ 0.02)
    sprite_hidden: int | None = None
    # weight of the sprite pathway's own loss (flow.sprite_loss) in cameo batches
    sprite_weight: float = 1.0
    # "sprite": train the sprite pathway only, every other weight frozen (so clips without a
    # cameo stay bit for bit what they were); None trains everything
    train_only: str | None = None
    # > 0: train the model's amodal head (ModelConfig.amodal_head; with --init-from it grows
    # the loaded model by it) with this weight on flow.amodal_loss, through the trunk: the
    # trunk is asked where every object is in every frame, behind the wall too
    amodal_weight: float = 0.0
    # ModelConfig.amodal_block of a model grown by the head (0: the output tokens)
    amodal_block: int = 0

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def model_config(tc: TrainConfig) -> ModelConfig:
    mc = copy.deepcopy(CONFIGS[tc.model])
    if tc.text_mode:
        mc.text_mode = tc.text_mode
    if tc.head_hidden is not None:
        mc.head_hidden = tc.head_hidden
    if tc.depth is not None:
        mc.depth = tc.depth
    if tc.sprite_hidden is not None:
        mc.sprite_hidden = tc.sprite_hidden
    if tc.amodal_weight > 0:
        mc.amodal_head, mc.amodal_block = True, tc.amodal_block
    return mc


TRAINABLE = {"sprite": ("sprite_mlp.",)}


def trainable_parameters(model: SpaceTimeDiT, only: str | None) -> list[torch.nn.Parameter]:
    """The parameters a run trains; with `only`, the rest are frozen (requires_grad off)."""
    if only is None:
        return list(model.parameters())
    if only not in TRAINABLE:
        raise ValueError(f"--train-only {only!r}: one of {', '.join(TRAINABLE)}")
    prefixes = TRAINABLE[only]
    keep = []
    for name, p in model.named_parameters():
        p.requires_grad_(name.startswith(prefixes))
        if p.requires_grad:
            keep.append(p)
    if not keep:
        raise ValueError(f"--train-only {only}: the model has no such parameters")
    return keep


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
        self.next_seed = first_seed
        self.cursor = 0
        it = range(size)
        if progress:
            from tqdm import tqdm

            it = tqdm(it, desc="world clips", mininterval=5)
        for i in it:
            self._fill(i)

    def _fill(self, i: int) -> None:
        seed = self.next_seed
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


# --------------------------------------------------------------------------- checkpoints


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
    settings it was measured with (`interface.weight_sampler_defaults`)."""
    run_dir, out_path = Path(run_dir), Path(out_path)
    tensors, meta = read_checkpoint(run_dir / "ckpt.safetensors")
    prefix = f"{which}."
    ema = {
        k[len(prefix) :]: v.to(dtype).contiguous()
        for k, v in tensors.items()
        if k.startswith(prefix)
    }
    tc = json.loads(meta.get("train_config", "{}"))
    init_steps = int(json.loads(meta.get("extra", "{}")).get("init_steps", 0))
    out_meta = {
        "config": meta["config"],
        "step": meta.get("step", "0"),  # of this run
        # of the weights' whole lineage (runs started --init-from add their parent's)
        "total_steps": str(init_steps + int(meta.get("step", "0"))),
        "format": "riff-world-v0",
        "text_encoder": tc.get("text_encoder", "minilm"),
        "source_run": run_dir.name,
        "weights": which,
        **(extra_meta or {}),
    }
    out_path.parent.mkdir(parents=True, exist_ok=True)
    save_file(ema, str(out_path), metadata=out_meta)
    return out_path


# --------------------------------------------------------------------------- loop


def _lr(step: int, tc: TrainConfig) -> float:
    warm = min(1.0, (step + 1) / max(tc.warmup, 1))
    if tc.lr_end is None or step < tc.warmup:
        return tc.lr * warm
    span = max(tc.steps - tc.warmup, 1)
    frac = min(1.0, (step - tc.warmup) / span)
    return tc.lr_end + 0.5 * (tc.lr - tc.lr_end) * (1.0 + math.cos(math.pi * frac))


def write_samples(out: Path, ema, encoder, step: int, device, steps: int = 20) -> None:
    from .flow import tensor_to_frames
    from .sampler import SampleSpec, sample
    from .viz import save_grid
    from .world import make_clip as mk

    ref_clip = mk(12345, cameo=True)
    specs = [SampleSpec(p, seed=i) for i, p in enumerate(SAMPLE_PROMPTS)]
    specs[-1].refs = ref_clip.reference_images
    x = sample(ema, encoder, specs, steps=steps, method="euler", device=device)
    clips = list(tensor_to_frames(x.cpu()))
    refs = [None] * (len(specs) - 1) + [ref_clip.reference_images[0]]
    save_grid(
        out / "samples.png",
        clips,
        [s.prompt for s in specs],
        refs,
        title=f"EMA samples, step {step}",
    )


def train(
    out_dir: str | Path,
    tc: TrainConfig | None = None,
    resume: bool = True,
    device: str = "cpu",
    threads: int | None = None,
    max_minutes: float | None = None,
    progress: bool = True,
    log=print,
    init_from: str | Path | None = None,
) -> dict:
    """Train (or continue training) into `out_dir`. Returns a summary dict.

    `init_from`: exported weights (e.g. the shipped checkpoint) to start a *new* run from: the
    model config comes from the file's metadata, model and EMA start from its weights, the step
    count and the optimizer start afresh. Ignored when `out_dir` already holds a checkpoint."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if threads:
        torch.set_num_threads(threads)
    ckpt_path = out / "ckpt.safetensors"
    step = 0
    if resume and ckpt_path.exists():
        tensors, meta = read_checkpoint(ckpt_path)
        saved_tc = TrainConfig.from_dict(json.loads(meta["train_config"]))
        if tc is not None:  # command-line values win for schedule knobs, not for the model
            saved_tc.steps, saved_tc.batch, saved_tc.lr = tc.steps, tc.batch, tc.lr
            saved_tc.lr_end = tc.lr_end
            saved_tc.ckpt_every_s = tc.ckpt_every_s
            # and for the batch mix (a run can shift its weight between tasks as it goes)
            saved_tc.p_cameo, saved_tc.p_context = tc.p_cameo, tc.p_context
            saved_tc.p_wall, saved_tc.p_multi = tc.p_wall, tc.p_multi
            saved_tc.apart = tc.apart
            saved_tc.ema = tc.ema
            saved_tc.fg_weight = tc.fg_weight
            saved_tc.sprite_weight, saved_tc.train_only = tc.sprite_weight, tc.train_only
            saved_tc.amodal_weight = tc.amodal_weight
        tc = saved_tc
        mcfg = ModelConfig.from_dict(json.loads(meta["config"]))
        step = int(meta["step"])
        extra = json.loads(meta.get("extra", "{}"))
        prev_elapsed = float(extra.get("elapsed_s", 0.0))
        init_steps = int(extra.get("init_steps", 0))
    else:
        tc = tc or TrainConfig()
        mcfg = model_config(tc)
        tensors = None
        prev_elapsed = 0.0
        init_steps = 0  # steps behind the weights this run started from (lineage, for export)
        if init_from is not None:
            init, init_meta = read_checkpoint(Path(init_from))
            init_steps = int(init_meta.get("total_steps", init_meta.get("step", 0)))
            mcfg = ModelConfig.from_dict(json.loads(init_meta["config"]))
            if tc.head_hidden is not None:
                mcfg.head_hidden = tc.head_hidden
            if tc.depth is not None:
                if tc.depth < mcfg.depth:
                    raise ValueError(
                        f"--depth {tc.depth} would drop trained blocks of {init_from} "
                        f"(depth {mcfg.depth}); it can only grow a model"
                    )
                mcfg.depth = tc.depth
            if tc.sprite_hidden is not None:
                mcfg.sprite_hidden = tc.sprite_hidden
            if tc.amodal_weight > 0 and not mcfg.amodal_head:
                mcfg.amodal_head, mcfg.amodal_block = True, tc.amodal_block
            init = {k: v.float() for k, v in init.items()}
            tensors = {f"model.{k}": v for k, v in init.items()}
            tensors.update({f"ema.{k}": v for k, v in init.items()})
    torch.manual_seed(tc.seed + step)
    model = SpaceTimeDiT(mcfg).to(device)
    ema = copy.deepcopy(model).eval().requires_grad_(False)
    params = trainable_parameters(model, tc.train_only)
    opt = torch.optim.AdamW(params, lr=tc.lr, weight_decay=tc.weight_decay, betas=(0.9, 0.99))
    if tensors is not None and init_from is not None and not step:
        grown = {k: v for k, v in model.state_dict().items() if f"model.{k}" not in tensors}
        for k, v in grown.items():  # parameters the loaded weights lack: fresh init
            tensors[f"model.{k}"] = tensors[f"ema.{k}"] = v.detach().clone()
        if grown:
            log(f"new parameters (fresh init): {', '.join(sorted(grown))}")
    if tensors is not None:
        model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
        ema.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("ema.")})
        if step and (out / "optim.pt").exists():
            opt.load_state_dict(torch.load(out / "optim.pt", weights_only=False)["optimizer"])
        log(f"resumed {out} at step {step}" if step else f"initialised from {init_from}")
    (out / "config.json").write_text(
        json.dumps({"model": mcfg.to_dict(), "train": asdict(tc)}, indent=2)
    )
    log(f"model {count_params(model) / 1e6:.2f}M params, {mcfg.video_tokens} video tokens")
    if tc.amodal_weight > 0 and not mcfg.amodal_head:
        raise ValueError("--amodal-weight: this run's model has no amodal head")
    if tc.train_only:
        n = sum(p.numel() for p in params)
        log(f"training {tc.train_only} only: {n / 1e6:.2f}M params, the rest frozen")

    wcfg = world_config(tc, mcfg)
    cache = out.parent / f"text-cache-{tc.text_encoder}.pt"
    encoder = TextEncoder(tc.text_encoder, max_tokens=mcfg.max_text_tokens, disk_cache=cache)
    # pool seeds move on with the step so that a resumed run sees fresh clips
    pool = ClipPool(
        tc.pool_size,
        wcfg,
        tc.p_cameo,
        first_seed=tc.seed * 10**8 + step * 7,
        progress=progress,
        p_context=tc.p_context,
        context_frames=mcfg.max_context_frames,
        amodal=tc.amodal_weight > 0,
    )
    encoder.embed(sorted(set(pool.captions), key=len))
    encoder.save()

    hist_path = out / "loss.csv"
    hist_steps, hist_loss = [], []
    if hist_path.exists() and step > 0:
        for line in hist_path.read_text().splitlines()[1:]:
            s, ls = line.split(",")[:2]
            if int(s) <= step:
                hist_steps.append(int(s))
                hist_loss.append(float(ls))
    rng = np.random.default_rng(tc.seed * 7919 + step)
    gen = torch.Generator().manual_seed(tc.seed * 104729 + step)
    use_amp = str(device).startswith("cuda")
    t_start = last_ckpt = time.time()
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=tc.steps, initial=step, desc="train", mininterval=10, smoothing=0.05)
    model.train()
    while step < tc.steps:
        if step % tc.refresh_every == 0 and step > 0:
            pool.refresh(tc.refresh_count)
        # cameo clips come in batches of their own, so that the other batches carry no
        # reference tokens at all (~17 % fewer tokens per step)
        # (likewise context batches: only those carry the context tokens)
        u = rng.random()
        cameo_batch = u < tc.p_cameo
        ctx_batch = not cameo_batch and u < tc.p_cameo + tc.p_context and pool.has_ctx.any()
        cand = np.flatnonzero(pool.has_ctx if ctx_batch else pool.has_ref == cameo_batch)
        idx = cand[rng.integers(0, len(cand), size=tc.batch)]
        batch = pool.batch(
            idx,
            encoder,
            mcfg.max_text_tokens,
            device,
            refs=cameo_batch,
            context=ctx_batch,
            fg_weight=tc.fg_weight,
            sprite_weight=tc.sprite_weight,
            amodal_weight=tc.amodal_weight,
        )
        if tc.train_only == "sprite":
            # the pathway only ever runs in the sampler's fully conditioned branch (prompt and
            # reference both there), so a dropped prompt or reference would teach it nothing
            batch = drop_conditions(batch, 0.0, 0.0, gen)
        else:
            batch = drop_conditions(batch, tc.p_text_drop, tc.p_ref_drop, gen)
        for g in opt.param_groups:
            g["lr"] = _lr(step, tc)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=use_amp):
            loss = flow_loss(model, batch, generator=gen)
        opt.zero_grad(set_to_none=True)
        gnorm = torch.zeros(())
        if loss.requires_grad:  # a --train-only run's batches may not all reach what it trains
            loss.backward()
            gnorm = torch.nn.utils.clip_grad_norm_(params, tc.grad_clip)
            opt.step()
        with torch.no_grad():
            decay = min(tc.ema, (1 + step) / (10 + step))
            for pe, pm in zip(ema.parameters(), model.parameters(), strict=True):
                pe.lerp_(pm.detach(), 1 - decay)
        step += 1
        hist_steps.append(step)
        hist_loss.append(float(loss.detach()))
        if bar is not None:
            bar.update(1)
            bar.set_postfix(
                loss=f"{float(loss.detach()):.4f}", gnorm=f"{float(gnorm):.2f}", refresh=False
            )
        now = time.time()
        done = step >= tc.steps or (max_minutes and now - t_start > max_minutes * 60)
        if now - last_ckpt > tc.ckpt_every_s or done:
            _checkpoint(
                out,
                model,
                ema,
                opt,
                step,
                tc,
                encoder,
                hist_steps,
                hist_loss,
                device,
                {"elapsed_s": prev_elapsed + now - t_start, "init_steps": init_steps},
            )
            last_ckpt = time.time()
        if done:
            break
    if bar is not None:
        bar.close()
    recent = hist_loss[-200:]
    return {
        "step": step,
        "loss": float(np.mean(recent)) if recent else None,
        "out": str(out),
        "seconds": time.time() - t_start,
    }


def _checkpoint(
    out, model, ema, opt, step, tc, encoder, hist_steps, hist_loss, device, extra
) -> None:
    from .viz import save_loss_curve

    save_checkpoint(out, model, ema, opt, step, tc, extra)
    with open(out / "loss.csv", "w") as f:
        f.write("step,loss\n")
        f.writelines(f"{s},{v:.6f}\n" for s, v in zip(hist_steps, hist_loss, strict=True))
    save_loss_curve(out / "loss.png", hist_steps, hist_loss, title=f"{out.name}: step {step}")
    encoder.save()
    try:
        ema.eval()
        write_samples(out, ema, encoder, step, device, steps=tc.sample_steps)
    except Exception as exc:  # samples are a convenience; never kill a long run for them
        (out / "samples.error.txt").write_text(repr(exc))


# --------------------------------------------------------------------------- CLI


def add_arguments(parser) -> None:
    """Shared by `python -m generation.engine.train` and `manage.py train_engine`."""
    parser.add_argument(
        "--out",
        default=".data/engine-runs/riff-world-v0",
        help="run directory (checkpoint, loss.png, samples.png)",
    )
    parser.add_argument("--config", default="small", help="model config: small | tiny")
    parser.add_argument("--steps", type=int, default=TrainConfig.steps)
    parser.add_argument("--batch", type=int, default=24)
    parser.add_argument("--lr", type=float, default=TrainConfig.lr)
    parser.add_argument(
        "--lr-end",
        type=float,
        default=None,
        help="cosine-decay lr to this value at --steps (default: constant lr)",
    )
    parser.add_argument(
        "--pool", type=int, default=TrainConfig.pool_size, help="pre-rendered clips kept in memory"
    )
    parser.add_argument(
        "--p-cameo", type=float, default=TrainConfig.p_cameo, help="share of cameo batches"
    )
    parser.add_argument(
        "--p-context",
        type=float,
        default=TrainConfig.p_context,
        help="share of remix-context (continuation) batches",
    )
    parser.add_argument(
        "--p-wall",
        type=float,
        default=None,
        help=f"share of sliding/bouncing clips behind the wall (default {WorldConfig.p_occluder})",
    )
    parser.add_argument(
        "--p-multi",
        type=float,
        default=None,
        help="share of wall-free clips with two or three objects (default: a half)",
    )
    parser.add_argument(
        "--apart",
        action="store_true",
        help="redraw clips whose objects of one colour touch in more than two frames",
    )
    parser.add_argument(
        "--ema",
        type=float,
        default=TrainConfig.ema,
        help="EMA decay per step (0.999: the last ~1 000 steps; longer for a low-lr polish)",
    )
    parser.add_argument(
        "--fg-weight",
        type=float,
        default=TrainConfig.fg_weight,
        help="loss weight of object and wall voxels against background ones (1: plain MSE)",
    )
    parser.add_argument("--text-encoder", default="minilm", choices=["minilm", "hash"])
    parser.add_argument("--text-mode", default=None, choices=["joint", "cross"])
    parser.add_argument(
        "--head-hidden",
        type=int,
        default=None,
        help="MLP output head width (0 = linear only); with --init-from it grows the model",
    )
    parser.add_argument(
        "--depth",
        type=int,
        default=None,
        help="transformer blocks; with --init-from it grows the model by identity blocks",
    )
    parser.add_argument(
        "--sprite-hidden",
        type=int,
        default=None,
        help="sprite pathway width (0 = none); with --init-from it grows the model by it",
    )
    parser.add_argument(
        "--sprite-weight",
        type=float,
        default=TrainConfig.sprite_weight,
        help="weight of the sprite pathway's own loss in cameo batches",
    )
    parser.add_argument(
        "--amodal-weight",
        type=float,
        default=TrainConfig.amodal_weight,
        help="train an amodal head (where objects are, behind the wall too) through the trunk "
        "with this loss weight; with --init-from it grows the model by the head",
    )
    parser.add_argument(
        "--amodal-block",
        type=int,
        default=TrainConfig.amodal_block,
        help="the block whose video tokens the amodal head reads (0: the output tokens)",
    )
    parser.add_argument(
        "--train-only",
        default=None,
        choices=sorted(TRAINABLE),
        help="train these parameters only, the rest frozen (sprite: the sprite pathway)",
    )
    parser.add_argument("--ckpt-every", type=float, default=300.0, help="seconds")
    parser.add_argument("--max-minutes", type=float, default=None)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-resume", action="store_true", help="start from scratch")
    parser.add_argument(
        "--init-from",
        default=None,
        metavar="WEIGHTS",
        help="start a new run from exported weights (e.g. the shipped checkpoint)",
    )
    parser.add_argument(
        "--export-weights",
        default="ema",
        choices=["ema", "model"],
        help="which weights --export writes (default: the EMA)",
    )
    parser.add_argument(
        "--export",
        nargs="?",
        const=str(DEFAULT_WEIGHTS),
        default=None,
        metavar="PATH",
        help="write the EMA weights of --out (no training)",
    )


def run_from_args(args, log=print) -> dict:
    if args.export:
        path = export_weights(args.out, args.export, which=getattr(args, "export_weights", "ema"))
        size = Path(path).stat().st_size / 1e6
        log(f"exported {path} ({size:.1f} MB)")
        return {"exported": str(path), "mb": size}
    tc = TrainConfig(
        model=args.config,
        steps=args.steps,
        batch=args.batch,
        lr=args.lr,
        lr_end=getattr(args, "lr_end", None),
        pool_size=args.pool,
        p_cameo=args.p_cameo,
        p_context=args.p_context,
        p_wall=getattr(args, "p_wall", None),
        p_multi=getattr(args, "p_multi", None),
        apart=bool(getattr(args, "apart", False)),
        ema=getattr(args, "ema", TrainConfig.ema),
        fg_weight=getattr(args, "fg_weight", TrainConfig.fg_weight),
        text_encoder=args.text_encoder,
        text_mode=args.text_mode,
        head_hidden=getattr(args, "head_hidden", None),
        depth=getattr(args, "depth", None),
        sprite_hidden=getattr(args, "sprite_hidden", None),
        sprite_weight=getattr(args, "sprite_weight", TrainConfig.sprite_weight),
        train_only=getattr(args, "train_only", None),
        amodal_weight=getattr(args, "amodal_weight", TrainConfig.amodal_weight),
        amodal_block=getattr(args, "amodal_block", TrainConfig.amodal_block),
        ckpt_every_s=args.ckpt_every,
        seed=args.seed,
    )
    summary = train(
        args.out,
        tc,
        resume=not args.no_resume,
        device=args.device,
        threads=args.threads,
        max_minutes=args.max_minutes,
        log=log,
        init_from=getattr(args, "init_from", None),
    )
    log(json.dumps(summary))
    return summary


def main(argv=None) -> None:
    import argparse

    parser = argparse.ArgumentParser(description="Train the riff-world video model.")
    add_arguments(parser)
    run_from_args(parser.parse_args(argv))


if __name__ == "__main__":
    main()

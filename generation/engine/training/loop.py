"""Training loop: rectified flow on clips from the procedural world.

Resumable: `<out>/ckpt.safetensors` holds model + EMA weights (step and configs in the
metadata), `<out>/optim.pt` the AdamW state, `<out>/loss.csv` the history. Every
`ckpt_every_s` seconds a checkpoint, `loss.png` and `samples.png` are written next to it.
"""

from __future__ import annotations

import copy
import json
import math
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from ..flow import drop_conditions, flow_loss
from ..model import CONFIGS, ModelConfig, SpaceTimeDiT, count_params, with_attention
from ..text import TextEncoder
from .checkpoints import read_checkpoint, save_checkpoint
from .config import TRAINABLE, TrainConfig
from .data import ClipPool, world_config

SAMPLE_PROMPTS = [
    "a purple triangle bounces to the right",  # held-out pair
    "an orange ball falls onto the floor",  # held-out pair
    "two small yellow squares slide to the left",  # held-out pair
    "a small green ball slides behind a grey wall",
    "a red square and a blue triangle jump up",
    "the cameo bounces to the left",
]


def model_config(tc: TrainConfig) -> ModelConfig:
    mc = copy.deepcopy(CONFIGS[tc.model])
    if tc.attention:
        mc = with_attention(mc, tc.attention)
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


def _lr(step: int, tc: TrainConfig) -> float:
    warm = min(1.0, (step + 1) / max(tc.warmup, 1))
    if tc.lr_end is None or step < tc.warmup:
        return tc.lr * warm
    span = max(tc.steps - tc.warmup, 1)
    frac = min(1.0, (step - tc.warmup) / span)
    return tc.lr_end + 0.5 * (tc.lr - tc.lr_end) * (1.0 + math.cos(math.pi * frac))


def write_samples(out: Path, ema, encoder, step: int, device, steps: int = 20) -> None:
    from ..flow import tensor_to_frames
    from ..sampler import SampleSpec, sample
    from ..viz import save_grid
    from ..world import make_clip as mk

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
        # the caller's schedule and batch mix, the checkpoint's model and data (the fields'
        # `resume` metadata, training/config.py); without a caller, all of the checkpoint's
        tc = saved_tc if tc is None else tc.resumed_from(saved_tc)
        mcfg = ModelConfig.from_dict(json.loads(meta["config"]))
        step = int(meta["step"])
        extra = json.loads(meta.get("extra", "{}"))
        prev_elapsed = float(extra.get("elapsed_s", 0.0))
        init_steps = int(extra.get("init_steps", 0))
        init_seeds = extra.get("init_training_seeds")
    else:
        tc = tc or TrainConfig()
        mcfg = model_config(tc)
        tensors = None
        prev_elapsed = 0.0
        init_steps = 0  # steps behind the weights this run started from (lineage, for export)
        init_seeds = None  # the training seeds those weights record, for the export's lineage
        if init_from is not None:
            init, init_meta = read_checkpoint(Path(init_from))
            init_steps = int(init_meta.get("total_steps", init_meta.get("step", 0)))
            # Weights exported before seeds were recorded say so rather than claim nothing.
            init_seeds = json.loads(init_meta.get("training_seeds", "null")) or {
                "unrecorded": str(Path(init_from).name)
            }
            mcfg = ModelConfig.from_dict(json.loads(init_meta["config"]))
            if tc.attention and tc.attention != mcfg.attention:
                raise ValueError(
                    f"--attention {tc.attention}: {init_from} was trained with "
                    f"{mcfg.attention} attention, whose weights the other mode cannot use"
                )
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
    log(
        f"model {count_params(model) / 1e6:.2f}M params, {mcfg.video_tokens} video tokens, "
        f"{mcfg.attention} attention"
    )
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
                {
                    "elapsed_s": prev_elapsed + now - t_start,
                    "init_steps": init_steps,
                    "init_training_seeds": init_seeds,
                },
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
    from ..viz import save_loss_curve

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

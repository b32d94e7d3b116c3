"""TrainConfig: every knob of a training run, each declaring how it behaves on resume and
whether `train_engine` shows it.

Two questions used to be answered by hand in two other places, and drifted: which fields a
resumed run takes from its checkpoint (a list of 15 assignments in the loop) and which the
command line sets (a hand-written argparse call per flag, whose `--batch` default disagreed
with the config's). Now each field says it once:

    resume=True   a resumed run keeps the checkpoint's value: what the model, its data and
                  its text encoder were built from (changing it mid-run would train another
                  model under the same name)
    resume=False  the caller's value wins on resume: the schedule and the batch mix, which a
                  long run is allowed to change as it goes (pass them again each time)
    cli=True      `train_engine` has a flag for it, default the field's default

torch-free (numpy via the world), so the field tests and `--help` run without loading a model.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields
from typing import Any

from ..world import WorldConfig

# --train-only NAME: the parameters (by name prefix) such a run trains, the rest frozen
TRAINABLE = {"sprite": ("sprite_mlp.",)}


def setting(
    default: Any,
    *,
    resume: bool,
    cli: bool = False,
    help: str | None = None,  # noqa: A002 (argparse's name for it)
    flag: str | None = None,
    choices: tuple[str, ...] | None = None,
) -> Any:
    """A TrainConfig field. `flag` overrides the option name (`--` + the field name with
    dashes); `choices` and `help` go to argparse as they are."""
    return dataclasses.field(
        default=default,
        metadata={"resume": resume, "cli": cli, "help": help, "flag": flag, "choices": choices},
    )


@dataclass
class TrainConfig:
    model: str = setting(
        "small",
        resume=True,
        cli=True,
        flag="--config",
        help="model config: small | tiny | ablate-full | ablate-factorised",
    )
    steps: int = setting(200_000, resume=False, cli=True)
    # 24: what every shipped stage was trained with (docs/engine-history.md). The command line
    # said 24 and this said 32 until both were read from here.
    batch: int = setting(24, resume=False, cli=True)
    lr: float = setting(4e-4, resume=False, cli=True)
    # None: constant lr after warm-up. A number: cosine decay from `lr` after warm-up down to
    # `lr_end` at `steps` (a run of known length then ends cooled down, with no hand-lowering
    # of lr across resumes)
    lr_end: float | None = setting(
        None,
        resume=False,
        cli=True,
        help="cosine-decay lr to this value at --steps (default: constant lr)",
    )
    weight_decay: float = setting(0.01, resume=True)
    warmup: int = setting(300, resume=True)
    ema: float = setting(
        0.999,
        resume=False,
        cli=True,
        help="EMA decay per step (0.999: the last ~1 000 steps; longer for a low-lr polish)",
    )
    grad_clip: float = setting(1.0, resume=True)
    p_text_drop: float = setting(0.1, resume=True)
    p_ref_drop: float = setting(0.3, resume=True)
    p_cameo: float = setting(0.2, resume=False, cli=True, help="share of cameo batches")
    # remix conditioning: batches whose clips continue a simulation from `max_context_frames`
    # clean frames given as context (the parent's last frames at sampling time)
    p_context: float = setting(
        0.15, resume=False, cli=True, help="share of remix-context (continuation) batches"
    )
    # share of sliding/bouncing clips that pass behind the wall (None: the world's default,
    # WorldConfig.p_occluder); raised to train object permanence harder
    p_wall: float | None = setting(
        None,
        resume=False,
        cli=True,
        help=f"share of sliding/bouncing clips behind the wall (default {WorldConfig.p_occluder})",
    )
    # share of wall-free clips with two or three objects (None: the world's default, a half);
    # raised to train counting and keeping same-coloured objects apart harder
    p_multi: float | None = setting(
        None,
        resume=False,
        cli=True,
        help="share of wall-free clips with two or three objects (default: a half)",
    )
    # redraw clips in which two objects of one colour touch in more than two frames (they
    # render as one blob while the caption counts them; a third of the one-colour triples)
    apart: bool = setting(
        False,
        resume=False,
        cli=True,
        help="redraw clips whose objects of one colour touch in more than two frames",
    )
    # loss weight of the voxels that are not background (objects and the wall, grown by a
    # pixel) relative to background voxels; 1 is the plain MSE. An object drawn over the wall
    # or two objects merged cost the plain MSE a few dozen voxels out of 16 384
    fg_weight: float = setting(
        1.0,
        resume=False,
        cli=True,
        help="loss weight of object and wall voxels against background ones (1: plain MSE)",
    )
    pool_size: int = setting(
        12_000, resume=True, cli=True, flag="--pool", help="pre-rendered clips kept in memory"
    )
    refresh_every: int = setting(50, resume=True)
    refresh_count: int = setting(64, resume=True)
    ckpt_every_s: float = setting(
        300.0, resume=False, cli=True, flag="--ckpt-every", help="seconds"
    )
    sample_steps: int = setting(20, resume=True)
    seed: int = setting(0, resume=True, cli=True)
    text_encoder: str = setting("minilm", resume=True, cli=True, choices=("minilm", "hash"))
    # override ModelConfig.text_mode ("joint" / "cross")
    text_mode: str | None = setting(None, resume=True, cli=True, choices=("joint", "cross"))
    # override ModelConfig.attention: the config in that mode at matched parameters and FLOPs
    # (model.with_attention moves the MLP ratio by 2); None keeps the config's own. Only for a
    # new model: weights trained in one mode do not load into the other
    attention: str | None = setting(
        None,
        resume=True,
        cli=True,
        choices=("full", "factorised"),
        help="self-attention: full (global space-time) or factorised (within each frame, then "
        "across frames per position), parameters and FLOPs matched (default: the config's)",
    )
    # override ModelConfig.head_hidden; with --init-from it grows the loaded model by the MLP
    # output head (new parameters start from their fresh initialisation: a no-op at first)
    head_hidden: int | None = setting(
        None,
        resume=True,
        cli=True,
        help="MLP output head width (0 = linear only); with --init-from it grows the model",
    )
    # override ModelConfig.depth; with --init-from it may only grow the loaded model: the new
    # blocks go after the trained ones and start as the identity (adaLN-Zero gates and the
    # cross-attention output are zero-initialised), so the grown model starts where it was
    depth: int | None = setting(
        None,
        resume=True,
        cli=True,
        help="transformer blocks; with --init-from it grows the model by identity blocks",
    )
    # override ModelConfig.sprite_hidden: the sprite pathway for cameos; with --init-from it
    # grows the loaded model by it (nearly off at first: alpha ~ 0.02)
    sprite_hidden: int | None = setting(
        None,
        resume=True,
        cli=True,
        help="sprite pathway width (0 = none); with --init-from it grows the model by it",
    )
    # weight of the sprite pathway's own loss (flow.sprite_loss) in cameo batches
    sprite_weight: float = setting(
        1.0,
        resume=False,
        cli=True,
        help="weight of the sprite pathway's own loss in cameo batches",
    )
    # "sprite": train the sprite pathway only, every other weight frozen (so clips without a
    # cameo stay bit for bit what they were); None trains everything
    train_only: str | None = setting(
        None,
        resume=False,
        cli=True,
        choices=tuple(sorted(TRAINABLE)),
        help="train these parameters only, the rest frozen (sprite: the sprite pathway)",
    )
    # > 0: train the model's amodal head (ModelConfig.amodal_head; with --init-from it grows
    # the loaded model by it) with this weight on flow.amodal_loss, through the trunk: the
    # trunk is asked where every object is in every frame, behind the wall too
    amodal_weight: float = setting(
        0.0,
        resume=False,
        cli=True,
        help="train an amodal head (where objects are, behind the wall too) through the trunk "
        "with this loss weight; with --init-from it grows the model by the head",
    )
    # ModelConfig.amodal_block of a model grown by the head (0: the output tokens)
    amodal_block: int = setting(
        0,
        resume=True,
        cli=True,
        help="the block whose video tokens the amodal head reads (0: the output tokens)",
    )

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        """A config saved in a checkpoint; keys this code no longer knows are dropped."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    def resumed_from(self, saved: TrainConfig) -> TrainConfig:
        """The config a run resumed from a checkpoint trains with: the checkpoint's value of
        every resume=True field, this config's value of every other."""
        kept = {f.name: getattr(saved, f.name) for f in fields(self) if f.metadata["resume"]}
        return dataclasses.replace(self, **kept)


def cli_fields() -> list[dataclasses.Field]:
    """The TrainConfig fields `train_engine` has a flag for, in declaration order."""
    return [f for f in fields(TrainConfig) if f.metadata["cli"]]


def flag_of(f: dataclasses.Field) -> str:
    return f.metadata["flag"] or "--" + f.name.replace("_", "-")


def dest_of(f: dataclasses.Field) -> str:
    """The argparse attribute a field's flag parses into (argparse's own rule)."""
    return flag_of(f).lstrip("-").replace("-", "_")


def add_config_arguments(parser) -> None:
    """One flag per cli=True field; its default is the field's default, its type the
    default's (so a `--batch` default can never disagree with the config's)."""
    for f in cli_fields():
        meta = f.metadata
        if f.type in ("bool", bool):
            parser.add_argument(flag_of(f), dest=dest_of(f), action="store_true", help=meta["help"])
            continue
        kwargs: dict[str, Any] = {"dest": dest_of(f), "default": f.default, "help": meta["help"]}
        if meta["choices"]:
            kwargs["choices"] = list(meta["choices"])
        else:
            kwargs["type"] = _ARG_TYPES[f.type]
        parser.add_argument(flag_of(f), **kwargs)


# the field annotations (strings under `from __future__ import annotations`) -> argparse types
_ARG_TYPES = {
    "str": str,
    "int": int,
    "float": float,
    "str | None": str,
    "int | None": int,
    "float | None": float,
}


def config_from_args(args) -> TrainConfig:
    """The TrainConfig a parsed `train_engine` command line asks for (the other fields keep
    their defaults)."""
    return TrainConfig(**{f.name: getattr(args, dest_of(f)) for f in cli_fields()})

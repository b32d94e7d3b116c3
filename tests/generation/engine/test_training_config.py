"""TrainConfig's fields declare how they resume and whether the command line shows them; resume
and the CLI are built from those declarations, so neither can drift from the config."""

from __future__ import annotations

import argparse
import dataclasses
import json

import pytest

from generation.engine.training.cli import add_arguments
from generation.engine.training.config import (
    TrainConfig,
    cli_fields,
    config_from_args,
    dest_of,
    flag_of,
)

FIELDS = dataclasses.fields(TrainConfig)
# what a resumed run took from its caller before the fields said it (the 15 hand-copied ones)
CALLER_WINS = {
    "steps",
    "batch",
    "lr",
    "lr_end",
    "ckpt_every_s",
    "p_cameo",
    "p_context",
    "p_wall",
    "p_multi",
    "apart",
    "ema",
    "fg_weight",
    "sprite_weight",
    "train_only",
    "amodal_weight",
}
# every flag train_engine had before its config flags were generated
FLAGS = {
    "--attention",
    "--out", "--config", "--steps", "--batch", "--lr", "--lr-end", "--pool", "--p-cameo",
    "--p-context", "--p-wall", "--p-multi", "--apart", "--ema", "--fg-weight",
    "--text-encoder", "--text-mode", "--head-hidden", "--depth", "--sprite-hidden",
    "--sprite-weight", "--amodal-weight", "--amodal-block", "--train-only", "--ckpt-every",
    "--max-minutes", "--threads", "--device", "--seed", "--no-resume", "--init-from",
    "--export-weights", "--export",
}  # fmt: skip


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser()
    add_arguments(p)
    return p


@pytest.mark.parametrize("f", FIELDS, ids=[f.name for f in FIELDS])
def test_every_field_declares_how_it_resumes_and_whether_the_cli_shows_it(f):
    assert isinstance(f.metadata.get("resume"), bool), f"{f.name}: resume=True/False"
    assert isinstance(f.metadata.get("cli"), bool), f"{f.name}: cli=True/False"
    assert f.default is not dataclasses.MISSING, f"{f.name} needs a default"


def test_the_fields_that_resume_from_the_caller_are_the_schedule_and_the_batch_mix():
    assert {f.name for f in FIELDS if not f.metadata["resume"]} == CALLER_WINS


def value_unlike(f: dataclasses.Field, n: int):
    """A value of the field's type that is neither its default nor that of another `n`."""
    kind = f.type.split(" |")[0]
    return {"bool": not f.default, "int": 1000 + n, "float": 0.5 + n / 1000}.get(kind, f"v{n}")


def test_resume_takes_exactly_the_resume_fields_from_the_checkpoint():
    saved = TrainConfig(**{f.name: value_unlike(f, 1) for f in FIELDS})
    caller = TrainConfig(**{f.name: value_unlike(f, 2) for f in FIELDS})
    resumed = caller.resumed_from(saved)
    for f in FIELDS:
        source = saved if f.metadata["resume"] else caller
        assert getattr(resumed, f.name) == getattr(source, f.name), f.name
    assert caller == TrainConfig(**{f.name: value_unlike(f, 2) for f in FIELDS})  # untouched


def test_a_resumed_run_trains_with_the_fields_as_declared(tmp_path):
    from generation.engine.training.loop import train

    first = {
        "model": "tiny", "text_encoder": "hash", "batch": 4, "pool_size": 24, "steps": 2,
        "ckpt_every_s": 1e9, "sample_steps": 1, "seed": 1, "warmup": 10, "lr": 1e-3,
        "p_cameo": 0.2, "p_context": 0.1, "ema": 0.9, "refresh_every": 50, "fg_weight": 1.0,
    }  # fmt: skip
    second = {
        **first, "model": "small", "text_encoder": "minilm", "batch": 2, "pool_size": 30,
        "steps": 3, "seed": 2, "warmup": 20, "lr": 5e-4, "p_cameo": 0.0, "p_context": 0.5,
        "ema": 0.5, "refresh_every": 7, "fg_weight": 2.0, "apart": True, "depth": 9,
    }  # fmt: skip
    quiet = {"progress": False, "log": lambda *_: None, "threads": 1}
    train(tmp_path, TrainConfig(**first), **quiet)
    assert train(tmp_path, TrainConfig(**second), **quiet)["step"] == 3
    used = json.loads((tmp_path / "config.json").read_text())
    want = {
        f.name: (TrainConfig(**first) if f.metadata["resume"] else TrainConfig(**second))
        for f in FIELDS
    }
    assert used["train"] == {name: getattr(tc, name) for name, tc in want.items()}
    assert used["model"]["depth"] == 2  # the tiny model of the checkpoint, not 9 blocks


def test_cli_defaults_are_the_config_defaults():
    args = parser().parse_args([])
    for f in cli_fields():
        assert getattr(args, dest_of(f)) == f.default, flag_of(f)
    assert config_from_args(args) == TrainConfig()
    assert args.batch == TrainConfig().batch == 24  # the default the two used to disagree on


def test_cli_keeps_its_flags_and_maps_them_onto_the_fields():
    p = parser()
    assert {s for a in p._actions for s in a.option_strings} - {"-h", "--help"} == FLAGS
    assert {flag_of(f) for f in cli_fields()} <= FLAGS
    line = "--config tiny --pool 8 --ckpt-every 5 --apart --text-mode cross --batch 3"
    line += " --lr-end 1e-5 --p-wall 0.4 --train-only sprite --depth 7"
    args = p.parse_args(line.split(" "))
    tc = config_from_args(args)
    assert (tc.model, tc.pool_size, tc.ckpt_every_s, tc.apart, tc.text_mode) == (
        "tiny",
        8,
        5.0,
        True,
        "cross",
    )
    assert (tc.batch, tc.lr_end, tc.p_wall, tc.train_only, tc.depth) == (3, 1e-5, 0.4, "sprite", 7)
    with pytest.raises(SystemExit):
        p.parse_args(["--text-encoder", "bert"])  # choices come from the field

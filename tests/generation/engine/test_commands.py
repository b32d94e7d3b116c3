"""The management-command wrappers (only where Django is configured, i.e. under pytest-django)."""

from __future__ import annotations

import io
import json

import pytest
from django.conf import settings

pytestmark = pytest.mark.skipif(
    not settings.configured, reason="Django settings are not configured (run without -p no:django)"
)


def test_train_and_evaluate_commands(tmp_path):
    from django.core.management import call_command

    run = tmp_path / "run"
    call_command(
        "train_engine",
        out=str(run),
        config="tiny",
        text_encoder="hash",
        steps=2,
        batch=2,
        pool=8,
        no_resume=True,
        stdout=io.StringIO(),
    )
    assert (run / "ckpt.safetensors").exists() and (run / "samples.png").exists()
    call_command(
        "train_engine",
        out=str(run),
        export=str(tmp_path / "w.safetensors"),
        stdout=io.StringIO(),
    )
    assert (tmp_path / "w.safetensors").exists()

    def evaluate(name: str, **opts) -> dict:
        out = tmp_path / name
        call_command(
            "evaluate_engine",
            weights=str(tmp_path / "w.safetensors"),
            steps=2,
            out=str(out),
            stdout=io.StringIO(),
            **opts,
        )
        return json.loads((out / "report.json").read_text())

    report = evaluate("eval", n=2, continuity_n=2)
    assert report["n"] == 2 and report["simulator"]["color"] == 1.0
    cont = report["continuity"]
    assert cont["n"] == 2 and 0.0 <= cont["context"] <= 1.0 and 0.0 <= cont["no_context"] <= 1.0
    table = (tmp_path / "eval" / "report.md").read_text()
    assert table.startswith("| metric | generated (95 % interval) | simulator (ceiling) |")
    assert "| colour adherence |" in table and "| remix continuity" in table

    # --start scores a later slice of the same held-out sequence
    from generation.engine.world import eval_seed, heldout_clips

    later = evaluate("eval3", n=1, start=3, continuity_n=0)
    assert (later["n"], later["start"]) == (1, 3)
    row = later["per_clip"][0]["simulator"]
    assert (row["seed"], row["caption"]) == (eval_seed(3), heldout_clips(4)[3].caption)

    # a wall clip (i % 4 == 1, not a cameo clip) that the two-step tiny model misses gets
    # its picture
    wall = evaluate("eval9", n=1, start=9, continuity_n=0)
    perm = wall["per_clip"][0]["generated"]["permanence"]
    assert heldout_clips(10, cameo_every=6)[9].spec.occluder_x is not None
    assert perm["ok"] is False
    assert (tmp_path / "eval9" / "permanence-misses.png").exists()
    assert not (tmp_path / "eval3" / "permanence-misses.png").exists()  # no wall clip

    # --only wall keeps the slice's wall clips (those permanence is scored on), in order
    walls = evaluate("walls", n=12, only="wall", continuity_n=0)
    want = [c for c in heldout_clips(12, cameo_every=6) if c.spec.occluder_x is not None]
    assert len(want) == 2 and (walls["only"], walls["clips"]) == ("wall", 2)
    assert [r["simulator"]["seed"] for r in walls["per_clip"]] == [c.seed for c in want]
    assert all("permanence" in r["generated"] for r in walls["per_clip"])
    assert walls["generated"]["permanence_n"] == len(want)
    cameos = evaluate("cameos", n=12, only="cameo", continuity_n=0)
    assert [r["simulator"]["seed"] for r in cameos["per_clip"]] == [eval_seed(5), eval_seed(11)]


def test_evaluate_engine_card_rewrites_the_table_from_a_report(tmp_path):
    from pathlib import Path

    from django.core.management import call_command

    report = Path(__file__).resolve().parents[3] / "docs" / "engine-eval-stage16.json"
    card = tmp_path / "card.md"
    card.write_text("# card\n<!-- eval-table:begin -->\nstale\n<!-- eval-table:end -->\ntail\n")
    out = io.StringIO()
    call_command("evaluate_engine", card=str(report), card_file=str(card), stdout=out)
    assert "rewrote the evaluation table" in out.getvalue()
    text = card.read_text()
    assert "stale" not in text and text.startswith("# card\n") and text.endswith("\ntail\n")
    assert "| colour adherence | 94 % (91–96) | 100 % | ≥ 90 % | met | 348 |" in text
    assert not list(tmp_path.glob("**/report.json"))  # nothing was generated

"""The report reads its targets from one table, and the model card's evaluation table is the
report's, generated."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from generation.engine.evaluation import report as report_mod
from generation.engine.evaluation.report import (
    CARD_BEGIN,
    CARD_END,
    render_card,
    report_markdown,
    update_card,
)
from generation.engine.evaluation.targets import TARGETS, target_text, targets_met, verdicts

DOCS = Path(__file__).resolve().parents[3] / "docs"
SHIPPED_REPORT = "docs/engine-eval-stage16.json"  # the figures the weights shipped with
# The card's table: the shipped weights re-scored by the honest evaluator on fresh clips.
CARD_REPORT = "docs/engine-eval-70000.json"


@pytest.fixture(scope="module")
def shipped() -> dict:
    return json.loads((DOCS / "engine-eval-stage16.json").read_text())


def row(md: str, label: str) -> list[str]:
    (line,) = [ln for ln in md.splitlines() if ln.startswith(f"| {label} |")]
    return [cell.strip() for cell in line.strip("|").split("|")]


def test_the_shipped_report_is_judged_by_its_intervals(shipped):
    # it stored "met" for every target, judged on point estimates; on its 95 % intervals only
    # colour clears its target, and it has no interval for the old arc-fit ratio
    assert shipped["met"] == dict.fromkeys(TARGETS, True)
    assert verdicts(shipped) == {
        "color": "met",
        "shape": "undecided",
        "count": "undecided",
        "permanence": "undecided",
        "physics_rms_ratio": "undecided",
    }
    assert targets_met(shipped) == {k: k == "color" for k in TARGETS}
    assert shipped["engine_info"]["step"] == 135231 and shipped["sampler"]["two_pass"] is True


def test_the_report_table_reads_the_targets(shipped, monkeypatch):
    md = report_markdown(shipped)
    assert row(md, "colour adherence")[3:5] == ["≥ 90 %", "met"]
    assert row(md, "physics: arc fit rms (px)")[3:5] == ["≤ 2× simulator", "1.8×, undecided"]
    # the colour rate is 94.3 % (91–96): a target of 95 % is straddled, one of 97 % missed
    stricter = {**TARGETS, "color": 0.95, "physics_rms_ratio": 1.5}
    md = report_markdown(shipped, stricter)
    assert row(md, "colour adherence")[3:5] == ["≥ 95 %", "undecided"]
    md = report_markdown(shipped, {**TARGETS, "color": 0.97})
    assert row(md, "colour adherence")[3:5] == ["≥ 97 %", "not met"]
    assert row(md, "shape")[3:5] == ["≥ 80 %", "undecided"]
    # the default is the one table in targets.py, read when the report is rendered
    monkeypatch.setitem(TARGETS, "count", 0.9)
    assert row(report_markdown(shipped), "object count")[3:5] == ["≥ 90 %", "not met"]
    assert targets_met(shipped)["count"] is False
    assert target_text("permanence") == "≥ 80 %"


def test_evaluate_engine_judges_by_the_targets_table(monkeypatch, tmp_path):
    from generation.engine.backends import get_engine
    from generation.engine.evaluation.run import evaluate_engine

    engine = get_engine("riff-world", config="tiny", weights=None, steps=1)

    def evaluate() -> dict:
        return evaluate_engine(engine, n=2, progress=False, continuity_n=0, log=lambda *_: None)

    for key in TARGETS:
        monkeypatch.setitem(TARGETS, key, 1e9 if key == "physics_rms_ratio" else 0.0)
    rep = evaluate()
    assert rep["targets"] == TARGETS
    rated = [k for k in ("color", "shape", "count") if rep["generated"][k] is not None]
    assert rated and all(rep["met"][k] for k in rated)
    for key in TARGETS:
        monkeypatch.setitem(TARGETS, key, -1.0 if key == "physics_rms_ratio" else 1.01)
    rep = evaluate()
    assert rep["targets"]["color"] == 1.01 and not any(rep["met"].values())


def test_the_card_table_is_the_fresh_re_score():
    rescored = json.loads((DOCS / "engine-eval-70000.json").read_text())
    card = (DOCS / "engine.md").read_text()
    assert card.count(CARD_BEGIN) == card.count(CARD_END) == 1
    # regenerating it changes nothing: `python manage.py evaluate_engine --card` was run
    assert render_card(card, rescored, CARD_REPORT) == card
    section = card[card.index(CARD_BEGIN) : card.index(CARD_END)]
    assert "Held-out clips 70000–70767 (768 clips, 64 continuations from 70000)" in section
    assert report_markdown(rescored) in section
    # what the card's prose says of it
    assert verdicts(rescored) == {
        "color": "met",
        "shape": "undecided",
        "count": "undecided",
        "permanence": "not met",
        "physics_rms_ratio": "not met",
    }


def test_the_card_stays_a_card():
    assert len((DOCS / "engine.md").read_text().splitlines()) <= 210
    for name in ("engine-history.md", "engine-backends.md"):
        assert (DOCS / name).exists(), name


def test_update_card_rewrites_only_the_marked_section(tmp_path, shipped):
    report = tmp_path / "report.json"
    report.write_text(json.dumps(shipped))
    card = tmp_path / "card.md"
    card.write_text(f"# before\n\n{CARD_BEGIN}\n| stale |\n{CARD_END}\n\nafter\n")
    assert update_card(card, report) is True
    text = card.read_text()
    assert text.startswith("# before\n\n") and text.endswith("\n\nafter\n")
    assert "| stale |" not in text and report_markdown(shipped) in text
    assert update_card(card, report) is False
    card.write_text("# no markers\n")
    with pytest.raises(ValueError, match="eval-table:begin"):
        update_card(card, report)
    assert report_mod.CARD_BEGIN == "<!-- eval-table:begin -->"

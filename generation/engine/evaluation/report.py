"""The evaluation report as the model card shows it: the markdown table of a report, and the
card's generated section (`manage.py evaluate_engine --card REPORT.json`).

The card (docs/engine.md) holds the table between two markers; everything between them is
rewritten from the report, so the numbers on the card are the report's and nothing else.
"""

from __future__ import annotations

import json
from pathlib import Path

from .analysis import PHYSICS_TOL_PX
from .metrics import CAMEO_OK, MISS_KINDS, PROMPT_KINDS
from .targets import TARGETS, target_text, verdicts

CARD_BEGIN = "<!-- eval-table:begin -->"
CARD_END = "<!-- eval-table:end -->"
MISS_LABELS = {
    "never_hidden": "never hidden",
    "not_back": "not back",
    "wrong_time": "wrong time",
    "off_track": "off track",
}


def report_markdown(rep: dict, targets: dict[str, float] | None = None) -> str:
    """The evaluation table of the model card (docs/engine.md), from a report.

    Targets and verdicts come from `targets` (default: targets.TARGETS, the code's), not from
    what the report stored: a card regenerated after a target changed says so. A verdict is
    "met", "not met" or "undecided" by where the 95 % interval lies (targets.verdict).
    Reports that split held-out from seen prompts get a row of the two under each rate;
    older reports render as they did, judged by their intervals."""
    targets = TARGETS if targets is None else targets
    g, s = rep["generated"], rep["simulator"]
    verdict = verdicts(rep, targets)

    def pct(v):
        return "–" if v is None else f"{100 * v:.0f} %"

    def rate_of(d: dict, key: str) -> str:  # the rate and its 95 % interval over the clips
        ci = d.get(f"{key}_ci95")
        if d.get(key) is None or not ci:
            return pct(d.get(key))
        return f"{pct(d[key])} ({100 * ci[0]:.0f}–{100 * ci[1]:.0f})"

    def rate(key):
        return rate_of(g, key)

    def num(v, nd=2):
        return "–" if v is None else f"{v:.{nd}f}"

    def mark(key):
        return verdict[key]

    def goal(key):
        return target_text(key, targets)

    def by_n(d: dict) -> str:
        return " · ".join(f"{v['ok']}/{v['n']}" for v in d.values())

    def by_prompt(key: str) -> list[tuple]:
        """The rate over held-out prompts · over seen ones, where the report has them."""
        gp, sp = g.get("by_prompt"), s.get("by_prompt") or {}
        if not gp:
            return []
        return [
            (
                "… held-out · seen prompts",
                " · ".join(rate_of(gp[k], key) for k in PROMPT_KINDS),
                " · ".join(pct((sp.get(k) or {}).get(key)) for k in PROMPT_KINDS),
                "",
                "",
                " · ".join(str(gp[k][f"{key}_n"]) for k in PROMPT_KINDS),
            )
        ]

    count_rows = [
        ("object count", rate("count"), pct(s["count"]), goal("count"), mark("count"), g["count_n"])
    ]
    count_rows += by_prompt("count")
    if g.get("count_by_n"):  # where the misses are (reports before it was measured lack it)
        count_rows.append(
            (
                f"object count, by objects asked ({' / '.join(g['count_by_n'])})",
                by_n(g["count_by_n"]),
                by_n(s.get("count_by_n") or {}),
                "",
                "",
                g["count_n"],
            )
        )
    perm_rows = by_prompt("permanence")
    if g.get("permanence_misses"):  # reports before it was measured lack it
        pm, sm = g["permanence_misses"], s.get("permanence_misses") or {}
        kinds = [k for k in MISS_KINDS if k in pm]  # older reports: no "wrong time"

        def misses(d: dict) -> str:
            return " · ".join(str(d.get(k, "–")) for k in kinds)

        perm_rows.append(
            (
                f"permanence misses: {' / '.join(MISS_LABELS[k] for k in kinds)}",
                misses(pm),
                misses(sm),
                "",
                "",
                g["permanence_n"],
            )
        )
    ratio, ratio_ci = rep.get("physics_rms_ratio"), rep.get("physics_rms_ratio_ci95")
    ratio_text = num(ratio, 1)
    if ratio_ci:
        ratio_text += f" ({num(ratio_ci[0], 1)}–{num(ratio_ci[1], 1)})"
    if g.get("physics") is not None or "physics_ci95" in g:  # the world's trajectory
        phys_rows = [
            (
                f"physics: on the world's trajectory (rms ≤ {PHYSICS_TOL_PX:g} px, bounces "
                "±1 frame)",
                rate("physics"),
                pct(s.get("physics")),
                "",
                "",
                g["physics_n"],
            ),
            *by_prompt("physics"),
            (
                "physics: rms off the world's trajectory (median px)",
                num(g["physics_rms"]),
                num(s["physics_rms"]),
                goal("physics_rms_ratio"),
                f"{ratio_text}×, {mark('physics_rms_ratio')}",
                g["physics_n"],
            ),
        ]
    else:  # reports from before: the quadratic arc fits were the target's figure
        phys_rows = [
            (
                "physics: arc fit rms (px)",
                num(g["physics_rms"]),
                num(s["physics_rms"]),
                goal("physics_rms_ratio"),
                f"{ratio_text}×, {mark('physics_rms_ratio')}",
                g["physics_n"],
            )
        ]
    rows = [
        (
            "colour adherence",
            rate("color"),
            pct(s["color"]),
            goal("color"),
            mark("color"),
            g["color_n"],
        ),
        *by_prompt("color"),
        ("shape", rate("shape"), pct(s["shape"]), goal("shape"), mark("shape"), g["shape_n"]),
        *by_prompt("shape"),
        *count_rows,
        (
            "object permanence",
            rate("permanence"),
            pct(s["permanence"]),
            goal("permanence"),
            mark("permanence"),
            g["permanence_n"],
        ),
        *perm_rows,
        *phys_rows,
        (
            "physics: fitted gravity (px/frame²)",
            num(g["physics_gravity"], 3),
            num(s["physics_gravity"], 3),
            f"{rep['simulator_gravity']} in the simulator",
            "",
            g["physics_n"],
        ),
        (
            "physics: restitution",
            num(g["physics_restitution"]),
            num(s["physics_restitution"]),
            f"{rep['simulator_restitution']} in the simulator",
            "",
            g["physics_n"],
        ),
        ("cameo fidelity", pct(g["cameo"]), pct(s["cameo"]), "", "", g["cameo_n"]),
    ]
    lines = [
        "| metric | generated (95 % interval) | simulator (ceiling) | target | | clips |",
        "|---|---:|---:|---|---|---:|",
    ]
    lines += [f"| {a} | {b} | {c} | {d} | {e} | {f} |" for a, b, c, d, e, f in rows]
    if "cameo_error" in g:
        lines.append(
            f"| cameo sprite error (chance) | {num(g['cameo_error'])} "
            f"({num(g['cameo_chance_error'])}) | {num(s['cameo_error'])} | < {CAMEO_OK:g} | | "
            f"{g['cameo_n']} |"
        )
    cont = rep.get("continuity")
    if cont:
        lines.append(
            f"| remix continuity, with / without context (median px) | {pct(cont['context'])} "
            f"/ {pct(cont['no_context'])} ({num(cont['context_median_px'], 1)} / "
            f"{num(cont['no_context_median_px'], 1)}) | 100 % | | | {cont['n']} |"
        )
    return "\n".join(lines) + "\n"


def card_section(rep: dict, source: str) -> str:
    """What goes between the card's markers: where the figures come from, then the table."""
    cont = rep.get("continuity") or {}
    cont_text = f"{cont.get('n', 0)} continuations"
    if cont.get("start") and cont.get("n"):  # reports before they followed --start lack it
        cont_text += f" from {cont['start']}"
    first = rep.get("start", 0)
    last = first + rep["n"] - 1
    info = rep.get("engine_info") or {}
    sampler = rep.get("sampler") or {}
    kind = f", {rep['only']} clips only" if rep.get("only") else ""
    passes = "two passes" if sampler.get("two_pass") else "one pass"
    steps = f"{info['step']:,}".replace(",", " ") if "step" in info else "?"
    scale = sampler.get("text_scale")
    scale = "?" if scale is None else f"{scale:g}"
    lines = [
        CARD_BEGIN,
        f"<!-- generated from {source} by `python manage.py evaluate_engine --card {source}`;"
        " edit the report or the code, not this table -->",
        f"Held-out clips {first}–{last} ({rep.get('clips', rep['n'])} clips{kind}, "
        f"{cont_text}), weights `{info.get('weights', '?')}` ({steps} training steps), "
        f"{sampler.get('method', '?')} {sampler.get('steps', '?')} steps, text scale "
        f"{scale}, {passes}. Full report: `{source}`.",
        "",
        report_markdown(rep).rstrip("\n"),
        CARD_END,
    ]
    return "\n".join(lines)


def render_card(card: str, rep: dict, source: str) -> str:
    """`card` with the text between its markers (the markers included) replaced by
    `card_section(rep, source)`. Raises ValueError when the card has no such section."""
    begin, end = card.find(CARD_BEGIN), card.find(CARD_END)
    if begin < 0 or end < begin:
        raise ValueError(f"the card has no {CARD_BEGIN} ... {CARD_END} section")
    return card[:begin] + card_section(rep, source) + card[end + len(CARD_END) :]


def update_card(card_path: str | Path, report_path: str | Path) -> bool:
    """Rewrite the evaluation table of the card at `card_path` from the report JSON at
    `report_path`; True when the file changed."""
    card_path = Path(card_path)
    old = card_path.read_text()
    new = render_card(old, json.loads(Path(report_path).read_text()), str(report_path))
    if new != old:
        card_path.write_text(new)
    return new != old

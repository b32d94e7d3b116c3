"""The report: ratios to `/me`, the `--out` file (one entry per label), the printed table, and
the data sizes it records."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

from django.db import connection

from .cpu import GROUPS


def add_ratios(scenarios: dict[str, dict]) -> dict:
    """Every scenario's 2xx req/s and p50/p99 as ratios to `/me` (the mean of its runs), and
    `/me`'s req/s as a ratio to `/healthz`'s. Adds `vs_me` to each scenario; returns the
    baseline."""
    runs = [scenarios[n] for n in ("me", "me_again") if n in scenarios]
    base = {
        "rps": statistics.fmean(r["ok_rps"] or 0 for r in runs),
        "p50": statistics.fmean(r["latency_ms"]["p50"] for r in runs),
        "p99": statistics.fmean(r["latency_ms"]["p99"] for r in runs),
    }
    for result in scenarios.values():
        lat = result["latency_ms"]
        result["vs_me"] = {
            "rps": _ratio(result["ok_rps"], base["rps"]),
            "p50": _ratio(lat["p50"], base["p50"]),
            "p99": _ratio(lat["p99"], base["p99"]),
        }
    healthz = scenarios.get("healthz")
    return {
        "me_ok_rps": round(base["rps"], 1),
        "me_p50_ms": round(base["p50"], 2),
        "me_p99_ms": round(base["p99"], 2),
        "healthz_ok_rps": healthz["ok_rps"] if healthz else None,
        "me_vs_healthz_rps": _ratio(base["rps"], healthz["ok_rps"]) if healthz else None,
    }


def _ratio(value: float | None, base: float | None) -> float | None:
    return round(value / base, 3) if value is not None and base else None


def merge_report(path: Path, label: str, report: dict) -> dict:
    """Writes `report` as `label`'s entry of the JSON file at `path`, keeping the other labels
    (a file in another shape, such as the old single-run report, is replaced)."""
    data: dict = {}
    if path.exists():
        try:
            data = json.loads(path.read_text())
        except ValueError:
            data = {}
        if not isinstance(data, dict) or not all(
            isinstance(v, dict) and "scenarios" in v for v in data.values()
        ):
            data = {}
    data[label] = report
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")
    return data


TITLES = {
    "healthz": "/healthz",
    "me": "GET /me",
    "feed_following": "following p1",
    "feed_latest": "latest p1",
    "feed_for_you": "for_you p1",
    "feed_following_later": "following p2",
    "feed_latest_later": "latest p2",
    "feed_for_you_later": "for_you p2",
    "admission": "POST /generations",
    "me_again": "GET /me (again)",
}


def report_lines(report: dict, label: str = "") -> list[str]:
    """The table `bench_feed` prints: per scenario, 2xx req/s, latency, non-2xx, the ratios
    to /me, and what the Celery worker did meanwhile (order refreshes published, CPU s)."""
    head = (
        f"{'scenario':<20}{'req/s':>8}{'p50':>8}{'p90':>8}{'p99':>8}{'non-2xx':>9}"
        f"{'req/s÷me':>10}{'p50÷me':>8}{'p99÷me':>8}{'refresh':>9}{'wkr cpu':>9}"
    )
    lines = [f"bench_feed {label} ({report['data'].get('posts', 0):,} posts)".strip(), head]
    for name, r in report["scenarios"].items():
        lat, vs, worker = r["latency_ms"], r["vs_me"], r.get("worker") or {}
        refreshes = worker.get("order_refresh_messages")
        lines.append(
            f"{TITLES.get(name, name):<20}{_f(r['ok_rps']):>8}{_f(lat['p50']):>8}"
            f"{_f(lat['p90']):>8}{_f(lat['p99']):>8}{r['non_2xx']:>9}"
            f"{_f(vs['rps'], 2):>10}{_f(vs['p50'], 2):>8}{_f(vs['p99'], 2):>8}"
            f"{'-' if refreshes is None else refreshes:>9}{_f(worker.get('cpu_s')):>9}"
            + ("  FLAGGED" if r["flags"] else "")
        )
    base = report["baseline"]
    lines.append(
        f"/me req/s ÷ /healthz req/s: {_f(base['me_vs_healthz_rps'], 2)} "
        f"(/me {base['me_ok_rps']} req/s, /healthz {base['healthz_ok_rps']} req/s; ms columns "
        "are latencies; refresh: feed_order_refresh messages published, wkr cpu: the Celery "
        "worker's CPU s, both since the previous scenario)"
    )
    lines += cpu_lines(report)
    for name, r in report["scenarios"].items():
        for flag in r["flags"]:
            lines.append(f"FLAGGED {name}: {flag}")
    clean = report.get("cleanup") or {}
    lines.append(
        f"admission: {clean.get('generations_deleted')} generations created and deleted "
        f"({clean.get('admissions_counted_2xx')} counted 2xx; the rest answered after wrk "
        f"stopped counting), {clean.get('broker_messages_purged')} broker messages purged; "
        f"{clean.get('order_refresh_messages_purged')} order refreshes left queued, purged"
    )
    for kind in ("following", "for_you"):
        visits = (report.get("collection") or {}).get(f"{kind}_first_visits")
        if visits:
            lines.append(
                f"{kind} first visits (unmeasured pass: inbox built / order ranked in the "
                f"request): {visits['viewers']} viewers in {visits['seconds']} s, "
                f"{visits['req_per_s']} req/s, {visits['statuses']}"
            )
    for name, summary in (report.get("profile") or {}).items():
        spied = summary.get("profiled_pass") or {}
        lines.append(
            f"profile {name}: {summary['busy_samples']} busy samples of {summary['samples']} "
            f"({summary['processes']} workers; {spied.get('ok_rps')} req/s while profiled)"
        )
        for kind in ("inclusive", "self"):
            lines.append(f"  {kind}:")
            for row in summary[kind][:8]:
                lines.append(f"    {row['percent']:>5.1f}%  {row['frame']}")
    return lines


def cpu_lines(report: dict) -> list[str]:
    """Where the machine's CPU went per answered request, by kind of process (bench.feed.cpu);
    nothing for a report written before it was measured."""
    measured = {name: r["cpu"] for name, r in report["scenarios"].items() if r.get("cpu")}
    if not measured:
        return []
    head = f"{'CPU ms per request':<20}{'total':>8}" + "".join(f"{g:>9}" for g in GROUPS)
    lines = [head + f"{'busy':>7}"]
    for name, cpu in measured.items():
        per = cpu["ms_per_request"]
        lines.append(
            f"{TITLES.get(name, name):<20}{_f(cpu['total_ms_per_request'], 3):>8}"
            + "".join(f"{_f(per.get(g), 3):>9}" for g in GROUPS)
            + f"{_f(cpu['busy_share'], 2):>7}"
        )
    lines.append(
        "(CPU seconds every process on the machine spent during the measured pass, per "
        "request wrk counted; busy: share of all cores used)"
    )
    return lines


def _f(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _data_sizes() -> dict:
    """Approximate row counts (planner statistics: exact counts of 10M rows cost seconds)."""
    tables = {
        "users": "accounts_user",
        "follows": "accounts_follow",
        "posts": "feed_post",
        "likes": "feed_like",
        "feed_events": "feed_feedevent",
    }
    out = {}
    with connection.cursor() as cur:
        for name, table in tables.items():
            cur.execute(
                "SELECT coalesce(sum(greatest(c.reltuples, 0)), 0)::bigint FROM pg_class c "
                # Plain tables only: a partitioned parent's estimate already sums its children.
                "WHERE c.relkind = 'r' AND (c.relname = %s OR c.oid IN (SELECT inhrelid FROM pg_inherits i "
                "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = %s))",
                [table, table],
            )
            out[name] = cur.fetchone()[0]
    return out

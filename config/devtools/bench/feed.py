"""The feed benchmark (`manage.py bench_feed`): latency and throughput against a real uvicorn
server.

Starts `uvicorn config.asgi:application` on a free port against this process's database and
Redis, mints tokens for sample viewers (seeded users who follow people), and measures, at a
fixed client concurrency and in the same run, a trivial authenticated DRF endpoint
(`GET /api/v1/me`) and `GET /api/v1/feed?kind=...` for each kind: page 1, then pages 2-3 via
`next`. Also reports the number of distinct authors among each viewer's top 20 For You posts.
"""

from __future__ import annotations

import http.client
import json
import os
import platform
import random
import socket
import statistics
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from urllib.parse import quote, urlsplit

from django.conf import settings
from django.core.management.base import CommandError
from django.db import connection
from tqdm import tqdm

from accounts.models import AuthToken, User
from accounts.tokens import hash_token, token_issue
from config.devtools.seeding import SEED_PREFIX

KINDS = ("following", "latest", "for_you")
TRIVIAL = "/api/v1/me"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _database_url() -> str:
    """The database this process is using (the test database under pytest)."""
    db = connection.settings_dict
    auth = quote(db.get("USER") or "", safe="")
    if db.get("PASSWORD"):
        auth += ":" + quote(db["PASSWORD"], safe="")
    host = db.get("HOST") or "127.0.0.1"
    port = db.get("PORT") or 5432
    return f"postgres://{auth}@{host}:{port}/{db['NAME']}"


def _ms(values: list[float], q: float) -> float | None:
    """The q-th percentile in milliseconds (nearest rank), None without samples."""
    if not values:
        return None
    ordered = sorted(values)
    rank = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return round(ordered[rank] * 1000, 2)


class Server:
    def __init__(self, *, port: int, workers: int, timeout: float):
        self.port = port
        env = {
            # A request the client gave up on must not keep the database busy afterwards.
            "PGOPTIONS": f"-c statement_timeout={int(timeout * 1000)}",
            **os.environ,
            "DATABASE_URL": _database_url(),
            "REDIS_URL": settings.REDIS_URL,
            "SECRET_KEY": settings.SECRET_KEY,
            # A production-like process: no DEBUG query log, not the test configuration.
            "DEBUG": "0",
            "RIFF_TESTING": "0",
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "DJANGO_SETTINGS_MODULE": "config.settings",
        }
        self.proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [
                sys.executable,
                "-m",
                "uvicorn",
                "config.asgi:application",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                str(workers),
                "--no-access-log",
                "--log-level",
                "warning",
            ],
            cwd=str(settings.BASE_DIR),
            env=env,
        )

    def wait(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise CommandError(f"uvicorn exited with {self.proc.returncode}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                conn.request("GET", "/healthz")
                if conn.getresponse().status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise CommandError("uvicorn did not become healthy in time")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()


class Client:
    """One keep-alive connection per thread."""

    def __init__(self, port: int, timeout: float):
        self.port = port
        self.timeout = timeout
        self.local = threading.local()

    def get(self, path: str, token: str) -> tuple[int, float, dict | None]:
        conn = getattr(self.local, "conn", None)
        if conn is None:
            conn = self.local.conn = http.client.HTTPConnection(
                "127.0.0.1", self.port, timeout=self.timeout
            )
        headers = {"Authorization": f"Bearer {token}", "X-Forwarded-Proto": "https"}
        started = time.perf_counter()
        try:
            conn.request("GET", path, headers=headers)
            resp = conn.getresponse()
            body = resp.read()
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            self.local.conn = None
            return (-1 if isinstance(exc, TimeoutError) else 0), time.perf_counter() - started, None
        elapsed = time.perf_counter() - started
        try:
            data = json.loads(body) if resp.status == 200 else None
        except ValueError:
            data = None
        return resp.status, elapsed, data


def _next_path(data: dict | None) -> str | None:
    link = (data or {}).get("next")
    if not link:
        return None
    parts = urlsplit(link)
    return parts.path + ("?" + parts.query if parts.query else "")


def run_scenario(
    client: Client,
    tokens: list[str],
    *,
    path: str,
    units: int,
    pages: int,
    concurrency: int,
    desc: str,
    quiet: bool,
    max_seconds: float,
) -> dict:
    """`units` tasks spread over `concurrency` threads; a task GETs `path` and follows `next`
    up to `pages` pages. Latencies are kept per page number. No task starts after
    `max_seconds`; status -1 is a client timeout, 0 a connection error."""
    latencies: dict[int, list[float]] = {p: [] for p in range(1, pages + 1)}
    statuses: dict[str, int] = {}
    lock = threading.Lock()
    counter = iter(range(units))
    bar = tqdm(total=units, desc=f"{desc:<18}", unit="task", disable=quiet)
    deadline = time.perf_counter() + max_seconds

    def worker() -> None:
        while True:
            with lock:
                i = next(counter, None)
            if i is None or time.perf_counter() > deadline:
                return
            token = tokens[i % len(tokens)]
            current: str | None = path
            got: list[tuple[int, int, float]] = []
            for page in range(1, pages + 1):
                if current is None:
                    break
                status, elapsed, data = client.get(current, token)
                got.append((page, status, elapsed))
                current = _next_path(data) if status == 200 else None
            with lock:
                for page, status, elapsed in got:
                    statuses[str(status)] = statuses.get(str(status), 0) + 1
                    if status == 200:
                        latencies[page].append(elapsed)
                bar.update(1)

    started = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    bar.close()
    total = sum(statuses.values())
    first = latencies[1]
    later = [x for p in range(2, pages + 1) for x in latencies[p]]
    ok = sum(len(v) for v in latencies.values())
    out = {
        "path": path,
        "requests": total,
        "ok": ok,
        "statuses": statuses,
        "seconds": round(wall, 3),
        "tasks_done": bar.n,
        # Successful requests per second (every page of a scroll counts).
        "rps": round(ok / wall, 1) if wall else None,
        "p50_ms": _ms(first, 50),
        "p99_ms": _ms(first, 99),
    }
    if pages > 1:
        out["pages_2_3"] = {
            "requests": len(later),
            "p50_ms": _ms(later, 50),
            "p99_ms": _ms(later, 99),
        }
    return out


def distinct_authors(
    client: Client, tokens: list[str], *, top: int = 20, max_seconds: float = 300.0
) -> dict:
    """Distinct authors among the first `top` posts of each viewer's For You feed."""
    counts = []
    deadline = time.perf_counter() + max_seconds
    for token in tokens:
        if time.perf_counter() > deadline:
            break
        path: str | None = f"/api/v1/feed?kind=for_you&limit={top}"
        authors: list[str] = []
        for _ in range(5):  # creation cards may take slots: read on until `top` posts
            if path is None or len(authors) >= top:
                break
            status, _, data = client.get(path, token)
            if status != 200:
                break
            for item in data.get("results", []):
                if item.get("kind") == "post" and len(authors) < top:
                    author = item["post"].get("author") or {}
                    authors.append(str(author.get("id") or author.get("username")))
            path = _next_path(data)
        if authors:
            counts.append(len(set(authors)))
    return {
        "top": top,
        "viewers": len(counts),
        "mean": round(statistics.fmean(counts), 2) if counts else None,
        "min": min(counts) if counts else None,
        "max": max(counts) if counts else None,
    }


def sample_viewers(n: int, *, min_follows: int, rng: random.Random) -> list[User]:
    with connection.cursor() as cur:
        cur.execute(
            "SELECT f.follower_id FROM accounts_follow f JOIN accounts_user u "
            "ON u.id = f.follower_id WHERE u.username LIKE %s AND u.is_active "
            "GROUP BY f.follower_id HAVING count(*) >= %s",
            [SEED_PREFIX.replace("_", "\\_") + "%", min_follows],
        )
        ids = [row[0] for row in cur.fetchall()]
    if not ids:
        raise CommandError("no seeded viewers with follows: run `manage.py seed_feed` first")
    ids.sort()
    chosen = rng.sample(ids, min(n, len(ids)))
    return list(User.objects.filter(pk__in=chosen))


def bench_feed(
    *,
    viewers: int,
    requests: int,
    concurrency: int,
    workers: int,
    pages: int,
    min_follows: int,
    seed: int,
    timeout: float,
    max_seconds: float,
    quiet: bool,
) -> dict:
    """Runs the whole benchmark and returns its report (what `bench_feed --out` writes). The
    sample viewers' tokens are revoked afterwards, however the run ends."""
    rng = random.Random(seed)
    chosen = sample_viewers(viewers, min_follows=min_follows, rng=rng)
    tokens = [token_issue(user=u, user_agent="bench_feed") for u in chosen]
    server = Server(port=_free_port(), workers=workers, timeout=timeout)
    try:
        server.wait()
        client = Client(server.port, timeout)
        common = {"concurrency": concurrency, "quiet": quiet, "max_seconds": max_seconds}
        # Warm-up, not measured: imports, connection set-up, inboxes built on first read.
        for kind in KINDS:
            run_scenario(
                client,
                tokens,
                path=f"/api/v1/feed?kind={kind}",
                units=len(tokens),
                pages=pages,
                desc=f"warm-up {kind}",
                **common,
            )
        run_scenario(
            client, tokens, path=TRIVIAL, units=len(tokens), pages=1, desc="warm-up me", **common
        )
        results = {
            "trivial": run_scenario(
                client, tokens, path=TRIVIAL, units=requests, pages=1, desc="me", **common
            )
        }
        for kind in KINDS:
            results[kind] = run_scenario(
                client,
                tokens,
                path=f"/api/v1/feed?kind={kind}",
                units=requests,
                pages=pages,
                desc=f"feed {kind}",
                **common,
            )
        # The trivial endpoint again at the end: the ratio uses the mean of both runs, so a
        # background load that changed during the run shows up instead of skewing one side.
        trivial_after = run_scenario(
            client, tokens, path=TRIVIAL, units=requests, pages=1, desc="me (again)", **common
        )
        diversity = distinct_authors(client, tokens, max_seconds=max_seconds)
    finally:
        server.stop()
        AuthToken.objects.filter(key_hash__in=[hash_token(t) for t in tokens]).delete()

    base = results["trivial"]
    base_p50 = statistics.fmean(x["p50_ms"] or 0 for x in (base, trivial_after))
    base_rps = statistics.fmean(x["rps"] or 0 for x in (base, trivial_after))
    for kind in KINDS:
        r = results[kind]
        r["ratio_p50_vs_trivial"] = (
            round(r["p50_ms"] / base_p50, 2) if base_p50 and r["p50_ms"] else None
        )
        r["ratio_rps_vs_trivial"] = round(r["rps"] / base_rps, 3) if base_rps else None
    return {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
        },
        "data": _data_sizes(),
        "settings": {
            "viewers": len(tokens),
            "requests_per_scenario": requests,
            "concurrency": concurrency,
            "uvicorn_workers": workers,
            "pages_per_scroll": pages,
            "request_timeout_s": timeout,
            "max_seconds_per_scenario": max_seconds,
        },
        "trivial": {"path": TRIVIAL, "before": base, "after": trivial_after},
        "feed": {kind: results[kind] for kind in KINDS},
        "for_you_distinct_authors_top20": diversity,
    }


def report_lines(report: dict) -> list[str]:
    """The table `bench_feed` prints."""
    lines = [
        f"{'endpoint':<26}{'p50 ms':>9}{'p99 ms':>9}{'req/s':>9}{'p50 x':>8}  pages 2-3 p50/p99"
    ]
    for label, r in (
        (("me (before)", report["trivial"]["before"]),)
        + tuple((f"feed kind={k}", report["feed"][k]) for k in KINDS)
        + (("me (after)", report["trivial"]["after"]),)
    ):
        later = r.get("pages_2_3")
        extra = f"  {_f(later['p50_ms'])}/{_f(later['p99_ms'])}" if later else ""
        lines.append(
            f"{label:<26}{_f(r['p50_ms']):>9}{_f(r['p99_ms']):>9}{_f(r['rps']):>9}"
            f"{_f(r.get('ratio_p50_vs_trivial'), 2):>8}{extra}  {r['statuses']}"
        )
    d = report["for_you_distinct_authors_top20"]
    lines.append(
        f"for_you distinct authors in top 20: mean {d['mean']} (min {d['min']}, max {d['max']})"
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

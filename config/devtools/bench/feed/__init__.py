"""The serving benchmark (`manage.py bench_feed`, issue #31), measured from outside with wrk.

One uvicorn server (`config.asgi:application`, N workers, `DEBUG=0`) and, as in production, one
Celery worker on the `default` queue (For You's order refreshes, `feed.tasks.feed_order_refresh`;
server.py says why), both on this process's database and Redis; tokens minted with
`accounts.tokens.token_issue` for seeded viewers (users who follow people). Every scenario is one request list (a file: one line per request) that the wrk
script `wrk/rotate.lua` walks so that no two requests of a run share a viewer until the list
wraps; each runs a short unmeasured warm-up, then `duration` seconds measured, then the script
writes requests, statuses, socket errors and p50/p90/p99 to a JSON file read back here.

Scenarios, in this order, all against the same server: `/healthz` (no I/O: the framework
floor), `GET /api/v1/me`, the first page of each feed kind, the second page of each kind (the
`next` links of every viewer's first page, collected by an unmeasured pass right before the
scenario: For You's cursor names a Redis snapshot), admission (`POST /api/v1/generations`
naming two cameos the caller holds grants to), and `/me` again. Figures are reported as ratios
to `/me` (the mean of its two runs), and `/me` as a ratio to `/healthz`. A scenario where more
than 1% of requests were not 2xx (or failed on the socket) is flagged: a bench of 401s is
worthless.

With `profile`, `/me`, the following and the For You first pages each run one more pass of
`duration` seconds with py-spy sampling the uvicorn workers (a separate pass: sampling slows the
server, so measured figures never come from it); the raw stacks are summarised into the
frames of this repository and of django / rest_framework / psycopg / redis / uvicorn / asgiref
that take the most samples.

Each scenario records (`worker`) what happened since the previous one ended: the order-refresh
messages its requests published for the bench's viewers (counted from Celery's `task-sent`
events, events.py) and the CPU seconds the worker took from the same machine.

Everything the run creates (tokens, cameos, grants, generations, the broker messages of those
generations, the order refreshes still queued) is deleted at the end, however the run ends.

Modules: `server` (uvicorn and the worker), `wrk` (request lists, wrk runs, parsing, flags),
`client` (plain HTTP: preflight, second-page collection), `admission` (its set-up and
clean-up), `broker` (purging the Celery queues in Redis), `events` (counting what was
published), `profile` (py-spy), `report` (ratios, the `--out` file, the printed table).
"""

from __future__ import annotations

import contextlib
import os
import platform
import random
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from django.core.management.base import CommandError
from django.db import connection, transaction
from django.utils import timezone

from accounts.models import AuthToken, User
from accounts.tokens import hash_token, token_issue
from config.devtools.seeding import SEED_PREFIX
from feed.inbox import drop as inbox_drop
from feed.ranking.snapshot import drop_quietly as order_drop

from .admission import (
    ADMISSION_PROMPT,
    GENERATIONS,
    admission_cleanup,
    admission_entries,
    admission_setup,
    settle_tables,
)
from .broker import purge_broker
from .client import collect_next_pages, http_call, preflight
from .events import SentTasks
from .profile import Profiler, summarise_profile
from .report import _data_sizes, add_ratios, merge_report, report_lines
from .server import ORDER_REFRESH, WORKER_QUEUE, Server, _free_port
from .wrk import (
    FLAG_SHARE,
    LUA,
    Runner,
    _wrk_version,
    flags_of,
    parse_wrk_report,
    write_request_list,
    wrk_binary,
)

__all__ = [
    "ADMISSION_PROMPT",
    "GENERATIONS",
    "LUA",
    "Profiler",
    "Runner",
    "Server",
    "add_ratios",
    "bench_feed",
    "flags_of",
    "http_call",
    "merge_report",
    "parse_wrk_report",
    "preflight",
    "purge_broker",
    "report_lines",
    "summarise_profile",
    "write_request_list",
    "wrk_binary",
]

KINDS = ("following", "latest", "for_you")
HEALTHZ = "/healthz"
ME = "/api/v1/me"
# The bench server's quota: admission is measured, not the 429 that refuses over-quota users.
SERVER_ENV = {
    "RIFF_DAILY_QUOTA": "1000000000",
    "RIFF_DAILY_QUOTA_TEEN": "1000000000",
    # The order refreshes the requests publish are counted from these events (events.py).
    "CELERY_TASK_SEND_SENT_EVENT": "1",
}
PROFILED = ("me", "feed_following", "feed_for_you")


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
    by_id = User.objects.in_bulk(chosen)
    return [by_id[i] for i in chosen]


def _exit_on_sigterm(signum, frame):
    raise SystemExit(128 + signum)


# Feeds whose first visit does work ahead of later ones (an inbox built, an order ranked).
FIRST_VISITS = ("following", "for_you")


def bench_feed(
    *,
    viewers: int,
    connections: int,
    duration: int,
    warmup: int,
    workers: int,
    admission_callers: int,
    min_follows: int,
    seed: int,
    timeout: float,
    profile: bool,
    profile_rate: int = 200,
    profile_dir: Path | None = None,
    inline: bool = False,
    quiet: bool = False,
    log: Callable[[str], None] = print,
) -> dict:
    """Runs every scenario against one server and returns the report (one label's entry of
    the `--out` file). Tokens, cameos, grants, generations and the broker messages of those
    generations and of the viewers' order refreshes are deleted afterwards, however the run
    ends."""
    wrk_binary()  # fail before minting anything when wrk is missing
    rng = random.Random(seed)
    chosen = sample_viewers(viewers, min_follows=min_follows, rng=rng)
    callers = chosen[: max(1, min(admission_callers, len(chosen)))]
    since = timezone.now()
    tokens: list[str] = []
    cameo_ids: list[str] = []
    cleanup: dict = {}
    results: dict[str, dict] = {}
    collected: dict[str, dict] = {}
    profiler = None
    load_before = os.getloadavg()
    started = time.monotonic()
    with contextlib.ExitStack() as undo:
        # Unwound last-in first-out, each step even when an earlier one raised; a SIGTERM
        # (a CI timeout, `kill`) unwinds it too instead of leaving tokens and rows behind.
        if threading.current_thread() is threading.main_thread():
            previous = signal.signal(signal.SIGTERM, _exit_on_sigterm)
            undo.callback(signal.signal, signal.SIGTERM, previous)
        workdir = Path(tempfile.mkdtemp(prefix="bench_feed-"))
        undo.callback(shutil.rmtree, workdir, ignore_errors=True)

        def clean_admission() -> None:
            cleanup.update(
                admission_cleanup(
                    caller_ids=[u.pk for u in callers], cameo_ids=cameo_ids, since=since
                )
            )

        undo.callback(clean_admission)
        # What earlier runs deleted is vacuumed first: every run starts from the same tables.
        settle_started = time.monotonic()
        cleanup["vacuumed_dead_rows"] = settle_tables()
        cleanup["vacuum_s"] = round(time.monotonic() - settle_started, 1)
        undo.callback(
            lambda: AuthToken.objects.filter(key_hash__in=[hash_token(t) for t in tokens]).delete()
        )
        with transaction.atomic():
            tokens = [token_issue(user=u, user_agent="bench_feed") for u in chosen]
        # Every run starts from viewers with no For You order (an earlier run's would be old
        # enough to be re-ranked on the worker during this one) and no Following inbox.
        for user in chosen:
            order_drop(user_id=user.pk)
            inbox_drop(user_id=user.pk)
        cameo_ids.extend(admission_setup(callers, exclude={u.pk for u in chosen}))

        def clean_refreshes() -> None:
            # The refreshes the worker had not run when it stopped (a prefetched one goes back
            # to the queue): no later worker should re-rank the viewers for this bench.
            cleanup["order_refresh_messages_purged"] = purge_broker(
                {str(u.pk) for u in chosen}, task=ORDER_REFRESH
            )

        undo.callback(clean_refreshes)
        sent = SentTasks(task=ORDER_REFRESH, ids={str(u.pk) for u in chosen})
        undo.callback(sent.close)
        sent.start()
        env = {**SERVER_ENV, "RIFF_ASGI_INLINE": "1" if inline else "0"}
        server = Server(port=_free_port(), workers=workers, timeout=timeout, extra_env=env)
        undo.callback(server.stop)
        server.wait()

        def first_pages(kind: str, what: str) -> dict:
            got = collect_next_pages(
                server.port,
                tokens,
                kind=kind,
                connections=connections,
                timeout=timeout,
                quiet=quiet,
            )
            server.check(f"the {kind} {what}")
            return got

        def first_visits(server, tokens, kind: str) -> dict:
            began = time.monotonic()
            got = first_pages(kind, "first visits")
            seconds = time.monotonic() - began
            return {
                "viewers": len(tokens),
                "statuses": got["statuses"],
                "seconds": round(seconds, 1),
                "req_per_s": round(len(tokens) / seconds, 1) if seconds else None,
            }

        def worker_now() -> tuple[int, float]:
            return sent.count(), server.worker.cpu_seconds()

        mark = worker_now()
        runner = Runner(
            port=server.port,
            connections=connections,
            duration=duration,
            warmup=warmup,
            timeout=timeout,
            workdir=workdir,
            log=log,
            server=server,
        )
        if profile:
            profiler = Profiler(
                master_pid=server.proc.pid, rate=profile_rate, workdir=workdir, keep=profile_dir
            )
            undo.callback(profiler.close)

        def run(name: str, entries: list[tuple]) -> None:
            nonlocal mark
            spy = profiler if name in PROFILED else None
            results[name] = runner.run(name, entries, profiler=spy)
            # Since the previous scenario ended: a second-page collection pass is included.
            now = worker_now()
            results[name]["worker"] = {
                "order_refresh_messages": now[0] - mark[0],
                "cpu_s": round(now[1] - mark[1], 2),
            }
            mark = now

        log(f"{len(tokens)} viewers, {connections} connections, {duration} s per scenario")
        run("healthz", [("GET", HEALTHZ, None)])
        run("me", [("GET", ME, t) for t in tokens])
        for kind in KINDS:
            if kind in FIRST_VISITS:
                # Every viewer opens the feed once first (unmeasured): a first visit builds the
                # viewer's Following inbox or ranks their For You order in the request, and the
                # measured pages are those of recently active viewers (docs/feed.md). The
                # pass's own figures are the cost of a first visit.
                collected[f"{kind}_first_visits"] = first_visits(server, tokens, kind)
            run(f"feed_{kind}", [("GET", f"/api/v1/feed?kind={kind}", t) for t in tokens])
        for kind in KINDS:
            # Right before its scenario: For You's cursors name snapshots that expire.
            got = first_pages(kind, "collection of second pages")
            entries = got.pop("entries")
            collected[kind] = {**got, "second_pages": len(entries)}
            if not entries:
                raise CommandError(f"no viewer has a second {kind} page: {got['statuses']}")
            run(f"feed_{kind}_later", entries)
            failed = sum(n for code, n in got["statuses"].items() if code != "200")
            if failed > len(tokens) * FLAG_SHARE:
                results[f"feed_{kind}_later"]["flags"].append(f"first pages: {got['statuses']}")
        run("admission", admission_entries(tokens[: len(callers)], cameo_ids))
        run("me_again", [("GET", ME, t) for t in tokens])

    # Every admission answered 2xx left a generation, and a few more answered after wrk
    # stopped counting (in flight at the end of the warm-up and of the run).
    admitted = results["admission"]
    cleanup["admissions_counted_2xx"] = 1 + admitted["warmup_ok"] + admitted["requests"]
    cleanup["admissions_counted_2xx"] -= admitted["non_2xx"]
    baseline = add_ratios(results)
    return {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "loadavg_before": [round(x, 2) for x in load_before],
            "loadavg_after": [round(x, 2) for x in os.getloadavg()],
            "wrk": _wrk_version(),
        },
        "data": _data_sizes(),
        "settings": {
            "viewers": len(tokens),
            "connections": connections,
            "wrk_threads": min(2, connections),
            "duration_s": duration,
            "warmup_s": warmup,
            "uvicorn_workers": workers,
            # RIFF_ASGI_INLINE: requests on the event loop's thread (config.core.handlers).
            "asgi_inline": inline,
            "celery_worker": {"queues": [WORKER_QUEUE], "concurrency": 1},
            "debug": False,
            "admission_callers": len(callers),
            "cameos_per_admission": len(cameo_ids),
            "min_follows": min_follows,
            "seed": seed,
            "request_timeout_s": timeout,
            "profile": profile,
            "wall_s": round(time.monotonic() - started, 1),
        },
        "baseline": baseline,
        "scenarios": results,
        "collection": collected,
        "profile": profiler.summaries if profiler else None,
        "cleanup": cleanup,
    }

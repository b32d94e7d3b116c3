"""Quick CPU-per-request figures for A/B runs of one change (issue #31, docs/bench-feed.md).

`make bench-feed` is the measurement of record; this is the tool for "did this change cut the
cost", run alternately on two checkouts against one seeded database (a `seed_feed` size):

    RIFF_DEV=1 DATABASE_URL=postgres://.../riff_bench_200k REDIS_URL=redis://... \\
      python -m config.devtools.bench.quick inproc [--requests 600] [--runs 5]
    ... python -m config.devtools.bench.quick server [--connections 4] [--seconds 5]
    ... python -m config.devtools.bench.quick publish [--requests 600] [--runs 5]

- `publish`: the CPU of one task message through `config.core.broker.lean_send` and through
  Celery's `apply_async`, with the `task-sent` event off and on (`--requests` sends, `--runs`
  alternating times; a queue of its own, deleted at the end). No database needed.
- `inproc`: Django's test client in this process (`DEBUG=0`), the CPU time of this process per
  request (`time.process_time`), each kind `--runs` times; prints min and median. No server,
  no sockets to the client: the request's own Python and its database and Redis round trips.
- `server`: uvicorn (`config.asgi:application`, `--workers`, one by default) and wrk with
  `--connections`, the CPU per request of the server's processes read from /proc: what the
  ASGI layer adds. Here `admission` is a kind too: `POST /api/v1/generations` naming two
  cameos the viewers hold grants to (the bench's set-up, `bench.feed.admission`; its
  generations, cameos and broker messages are deleted at the end).

Viewers are seeded users who follow someone, `--viewers` of them, each with a fresh token
(`accounts.tokens.token_issue`, user agent `bench-quick`; deleted at the end), taken in turn so
the per-user rate limit never answers. Before measuring, every kind is requested once per
viewer (For You ranks each viewer's order then, and Following builds the inboxes).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PATHS = {
    "healthz": "/healthz",
    "me": "/api/v1/me",
    "latest": "/api/v1/feed?kind=latest",
    "following": "/api/v1/feed?kind=following",
    "for_you": "/api/v1/feed?kind=for_you",
}


ADMISSION = "admission"


def _viewers(count: int) -> list[tuple]:
    """(user, fresh token) of `count` seeded users who follow someone."""
    from accounts.models import Follow, User
    from accounts.tokens import token_issue

    ids = Follow.objects.values_list("follower_id", flat=True).distinct()[:count]
    return [
        (u, token_issue(user=u, user_agent="bench-quick")) for u in User.objects.filter(pk__in=ids)
    ]


def _cleanup() -> None:
    from accounts.models import AuthToken

    AuthToken.objects.filter(user_agent="bench-quick").delete()


def inproc(tokens: list[str], kinds: list[str], requests: int, runs: int) -> None:
    from django.test import Client

    client = Client()

    def run(path: str, count: int) -> float:
        started = time.process_time()
        for i in range(count):
            auth = f"Bearer {tokens[i % len(tokens)]}"
            response = client.get(path, HTTP_AUTHORIZATION=auth)
            if response.status_code != 200:
                raise SystemExit(f"{path}: {response.status_code} {response.content[:200]!r}")
        return (time.process_time() - started) / count * 1000

    for kind in kinds:
        run(PATHS[kind], len(tokens))
    figures: dict[str, list[float]] = {kind: [] for kind in kinds}
    for _ in range(runs):
        for kind in kinds:
            figures[kind].append(run(PATHS[kind], requests))
    for kind, values in figures.items():
        listed = " ".join(f"{v:.2f}" for v in values)
        print(
            f"{kind:10s} CPU ms/request  min {min(values):.3f}  "
            f"median {statistics.median(values):.3f}  ({listed})"
        )


def publish(sends: int, runs: int) -> None:
    """CPU of this process per task message: `config.core.broker.lean_send` against Celery's
    `apply_async` (as `config.core.redis.publish` calls it), without and with the `task-sent`
    event, alternating, each `runs` times. The messages go to a queue of this run's own,
    deleted at the end (nothing consumes them)."""
    import uuid

    from config.celery import app
    from config.core.broker import forget_plans, lean_send
    from config.core.redis import PUBLISH_RETRY_POLICY, redis_client
    from feed.tasks import feed_order_refresh

    queue = f"bench-quick-{uuid.uuid4().hex[:8]}"
    app.amqp.queues.select_add(queue)
    arg = str(uuid.uuid4())
    sent_event = app.conf.task_send_sent_event

    def lean() -> None:
        if lean_send(feed_order_refresh, (arg,), {"queue": queue}) is None:
            raise SystemExit("the lean path said no: see config/core/broker.py")

    def celery() -> None:
        feed_order_refresh.apply_async(
            args=(arg,),
            ignore_result=True,
            retry=True,
            retry_policy=PUBLISH_RETRY_POLICY,
            queue=queue,
        )

    def timed(send) -> float:
        started = time.process_time()
        for _ in range(sends):
            send()
        return (time.process_time() - started) / sends * 1e6

    try:
        for event in (False, True):
            app.conf.task_send_sent_event = event
            forget_plans()
            figures: dict[str, list[float]] = {"lean": [], "celery": []}
            timed(lean), timed(celery)  # warm both
            for _ in range(runs):
                figures["lean"].append(timed(lean))
                figures["celery"].append(timed(celery))
            for name, values in figures.items():
                listed = " ".join(f"{v:.0f}" for v in values)
                print(
                    f"{name:6s} task-sent event {'on ' if event else 'off'} CPU us/send  "
                    f"min {min(values):.0f}  median {statistics.median(values):.0f}  ({listed})"
                )
    finally:
        app.conf.task_send_sent_event = sent_event
        forget_plans()
        redis_client().delete(queue)
        app.amqp.queues.pop(queue, None)


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _tree_cpu_seconds(pid: int) -> float:
    """CPU seconds of `pid` and its children (uvicorn's workers), those alive now."""
    import psutil

    family = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    return sum(_cpu_seconds(p.pid) for p in family)


def server(
    viewers: list[tuple], kinds: list[str], connections: int, seconds: int, workers: int = 1
) -> None:
    from datetime import UTC, datetime

    from .feed import SERVER_ENV
    from .feed.admission import admission_cleanup, admission_entries, admission_setup
    from .feed.wrk import LUA, parse_wrk_report, write_request_list

    tokens = [token for _, token in viewers]
    # The bench's quota (admission is measured, not its 429); not its task-sent events.
    quota = {k: v for k, v in SERVER_ENV.items() if k.startswith("RIFF_DAILY_QUOTA")}
    env = {
        **os.environ,
        **quota,
        "DEBUG": "0",
        "RIFF_TESTING": "0",
        "ALLOWED_HOSTS": "127.0.0.1",
    }
    since = datetime.now(UTC)
    cameo_ids = (
        admission_setup([u for u, _ in viewers], exclude={u.pk for u, _ in viewers})
        if ADMISSION in kinds
        else []
    )
    port = 8000 + os.getpid() % 1000
    proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", "uvicorn", "config.asgi:application", "--port", str(port)]
        + ["--no-access-log", "--log-level", "warning"]
        + (["--workers", str(workers)] if workers > 1 else []),
        env=env,
    )
    workdir = Path(tempfile.mkdtemp(prefix="riff-quick-"))
    try:
        for _ in range(150):
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                conn.request("GET", "/healthz")
                if conn.getresponse().status == 200:
                    break
            except OSError:
                time.sleep(0.2)

        def wrk(kind: str, duration: int) -> dict:
            listed = workdir / f"{kind}.list"
            if kind == ADMISSION:
                write_request_list(listed, admission_entries(tokens, cameo_ids))
            else:
                write_request_list(listed, [("GET", PATHS[kind], t) for t in tokens])
            report = workdir / f"{kind}.json"
            subprocess.run(  # noqa: S603 - wrk from PATH, our arguments
                ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "-s", str(LUA)]  # noqa: S607
                + [f"http://127.0.0.1:{port}", "--", str(listed), "0", "1", str(report)],
                capture_output=True,
                text=True,
                check=True,
            )
            return parse_wrk_report(json.loads(report.read_text()))

        for kind in kinds:
            wrk(kind, 2)
            before = _tree_cpu_seconds(proc.pid)
            got = wrk(kind, seconds)
            used = _tree_cpu_seconds(proc.pid) - before
            print(
                f"{kind:10s} {got['rps']:8.0f} req/s  server CPU "
                f"{used / got['requests'] * 1000:.3f} ms/request  non-2xx {got['non_2xx']}"
            )
    finally:
        proc.terminate()
        proc.wait()
        shutil.rmtree(workdir, ignore_errors=True)
        if cameo_ids:
            done = admission_cleanup(
                caller_ids=[u.pk for u, _ in viewers], cameo_ids=cameo_ids, since=since
            )
            print(f"admission clean-up: {done}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("mode", choices=("inproc", "server", "publish"))
    parser.add_argument("--kinds", default="healthz,me,latest,following,for_you")
    parser.add_argument("--viewers", type=int, default=300)
    parser.add_argument("--requests", type=int, default=600)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--workers", type=int, default=1, help="uvicorn workers (server mode)")
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.update(DEBUG="0", RIFF_TESTING="0")
    os.environ.setdefault("ALLOWED_HOSTS", "127.0.0.1,localhost,testserver")
    import django

    django.setup()
    if args.mode == "publish":
        publish(args.requests, args.runs)
        return
    kinds = [k for k in args.kinds.split(",") if k]
    unknown = set(kinds) - set(PATHS) - ({ADMISSION} if args.mode == "server" else set())
    if unknown:
        raise SystemExit(f"unknown kinds: {', '.join(sorted(unknown))} (of {', '.join(PATHS)})")
    viewers = _viewers(args.viewers)
    try:
        if args.mode == "inproc":
            inproc([token for _, token in viewers], kinds, args.requests, args.runs)
        else:
            server(viewers, kinds, args.connections, args.seconds, args.workers)
    finally:
        _cleanup()


if __name__ == "__main__":
    main()

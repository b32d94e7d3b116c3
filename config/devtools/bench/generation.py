"""Benchmarks of generation (`manage.py bench_generation`): what admission costs next to a
profile read, how fast a committed job reaches a worker, and a whole generation end to end.

- **admission vs /me**: authenticated `POST /api/v1/generations` (two cameo consent checks,
  ten safety rules, the quota lock, idempotency off) and `GET /api/v1/me`, by ten callers in
  rotation, through the full
  Django/DRF stack in-process, alternating one request of each so that whatever else the box
  does weighs on both alike; the ratio of their request rates is issue #31's figure. The
  broker publish after the commit is patched out of this loop (no worker runs here).
- **dispatch**: from the admission's commit to a real Celery worker (a thread of this
  process, on the real Redis broker) claiming the job; a tiny random-weight engine. These
  admissions publish for real: their latency is `admission_with_publish`.
- **e2e** (`--e2e N`): N generations one after another on an idle worker that is a real
  `celery -A config worker -Q gpu` subprocess (prefork, concurrency 1: the production command)
  with the configured engine (the shipped weights by default), watched by a real websocket
  client (`channels.testing.WebsocketCommunicator` on `config.asgi.application`, fed by the
  channel layer in Redis). Per job: the engine's own sampling time, the time from sending the
  POST to receiving the `generation.succeeded` event, and the stages in between (the worker's
  own breakdown, generation.timing, read from its log). `--busy K` runs K CPU-spinning
  processes meanwhile (the slowdown should be about proportional to the CPU share left).

Run it with nothing else consuming the broker's `gpu` queue (a dev worker would take the
jobs). Everything it creates is deleted at the end, also when a measurement fails.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

from django.conf import settings
from django.db import connection
from django.test import Client
from django.test.utils import override_settings
from tqdm import tqdm

GENERATIONS = "/api/v1/generations"
ME = "/api/v1/me"
# Ten rules that never match: admission reads and tests all of them on every request.
SAFETY_RULES = 10
# Callers the requests rotate through (each holds grants to both cameos): a realistic day's
# worth of jobs per caller for the quota count, not one caller with hundreds.
CALLERS = 10
# The worker's per-job stage line (generation.timing.report).
STAGES_LINE = re.compile(r"generation ([0-9a-f-]{36}) stages (\{.*\})")
WORKER_READY = "generation worker ready in"
WARM_FAILED = "warming the engine failed"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


def bench_generation(*, requests: int, dispatch: int, e2e: int = 0, busy: int = 0) -> dict:
    """Creates a cameo owner and CALLERS callers with grants to two active cameos, measures,
    and deletes everything it created (also when a measurement fails)."""
    from accounts.models import User
    from accounts.tokens import token_issue
    from cameos.models import Cameo, CameoGrant, CameoKind, CameoStatus
    from cameos.services import cameo_create
    from generation.models import Generation, Video
    from generation.services.videos import delete_files, video_files
    from moderation.models import SafetyRule

    stamp = str(int(time.time()))
    owner = User.objects.create_user(
        f"benchowner{stamp}", "", "x" * 12, birth_date=date(1990, 1, 1)
    )
    callers = [
        User.objects.create_user(
            f"benchcaller{stamp}x{i}", "", "x" * 12, birth_date=date(1990, 1, 1)
        )
        for i in range(CALLERS)
    ]
    cameos = []
    for i in range(2):
        cameo = cameo_create(
            owner=owner, kind=CameoKind.OBJECT, display_name="bench", handle=f"bench{stamp}x{i}"
        )
        # Verification needs a recording and a worker; the bench measures admission, not that.
        Cameo.objects.filter(pk=cameo.pk).update(status=CameoStatus.ACTIVE)
        CameoGrant.objects.bulk_create(CameoGrant(cameo=cameo, user=c) for c in callers)
        cameos.append(str(cameo.pk))
    rules = [
        SafetyRule.objects.create(name=f"bench{i}", pattern=f"forbiddenword{i}")
        for i in range(SAFETY_RULES)
    ]
    tokens = [token_issue(user=caller) for caller in callers]
    clients = [
        Client(HTTP_AUTHORIZATION=f"Bearer {token}", HTTP_HOST="localhost") for token in tokens
    ]
    results: dict = {"host": {"cpus": os.cpu_count(), "load_1m": round(os.getloadavg()[0], 2)}}
    try:
        with override_settings(RIFF_DAILY_QUOTA=10**9, CELERY_TASK_ALWAYS_EAGER=False):
            if requests:
                results.update(_admission_vs_me(clients, cameos, requests))
            if dispatch:
                results["dispatch"] = _dispatch(clients[0], dispatch)
            if e2e:
                results["e2e"] = _e2e(tokens[0], e2e, busy=busy)
    finally:
        for video in Video.objects.filter(owner__in=callers):
            delete_files(video_files(video))
        Generation.objects.filter(owner__in=callers).delete()
        for rule in rules:
            rule.delete()
        Cameo.objects.filter(owner=owner).delete()
        User.objects.filter(pk__in=[owner.pk, *(c.pk for c in callers)]).delete()
    return results


# --- admission next to /me ----------------------------------------------------------------


def _summary(latencies: list[float], elapsed: float) -> dict:
    return {
        "requests": len(latencies),
        "requests_per_s": round(len(latencies) / elapsed, 1),
        "p50_ms": _ms(percentile(latencies, 0.5)),
        "p99_ms": _ms(percentile(latencies, 0.99)),
        "mean_ms": _ms(statistics.mean(latencies)),
    }


def _admission_vs_me(clients: list[Client], cameos: list[str], n: int) -> dict:
    from unittest import mock

    from django.db import reset_queries
    from django.test.utils import CaptureQueriesContext

    def admit(i: int) -> None:
        response = clients[i % len(clients)].post(
            GENERATIONS,
            {"prompt": f"a red ball bounces {i}", "cameos": cameos},
            content_type="application/json",
        )
        assert response.status_code == 202, response.content

    def me(i: int) -> None:
        response = clients[i % len(clients)].get(ME)
        assert response.status_code == 200, response.content

    spent = {"me": 0.0, "admission": 0.0}
    latencies: dict[str, list[float]] = {"me": [], "admission": []}
    # Measure admission alone: the broker publish is patched out here and timed by _publish.
    with mock.patch("generation.dispatch.send"):
        for i in range(10):
            me(i)
            admit(i)
        with CaptureQueriesContext(connection) as queries:
            admit(-1)
        counted = {
            "admission_queries": len(queries.captured_queries),
            "admission_sql": [q["sql"][:120] for q in queries.captured_queries],
        }
        reset_queries()
        for i in tqdm(range(n), desc="admission vs /me", unit="pair"):
            for name, call in (("me", me), ("admission", admit)):
                began = time.perf_counter()
                call(i)
                took = time.perf_counter() - began
                latencies[name].append(took)
                spent[name] += took
    me_summary = _summary(latencies["me"], spent["me"])
    admission = _summary(latencies["admission"], spent["admission"])
    admission["cameos_per_request"] = len(cameos)
    return {
        "me": me_summary,
        "admission": admission,
        "admission_vs_me": round(admission["requests_per_s"] / me_summary["requests_per_s"], 3),
        **counted,
    }


# --- dispatch ------------------------------------------------------------------------------


def _dispatch(client: Client, n: int) -> dict:
    from celery.contrib.testing.worker import start_worker

    from config.celery import app
    from generation.models import Generation, GenerationStatus

    samples, posts = [], []
    # The worker only needs to claim: a tiny random-weight engine keeps the rest short.
    tiny = {"config": "tiny", "weights": None, "steps": 2}
    unfinished = [GenerationStatus.QUEUED, GenerationStatus.RUNNING]
    with (
        override_settings(RIFF_ENGINE_OPTIONS=tiny),
        start_worker(
            app, pool="solo", perform_ping_check=False, queues=["gpu"], shutdown_timeout=60
        ),
    ):
        for i in tqdm(range(n), desc="dispatch", unit="job"):
            began = time.perf_counter()
            response = client.post(
                GENERATIONS, {"prompt": f"dispatch {i}"}, content_type="application/json"
            )
            posts.append(time.perf_counter() - began)
            job = Generation.objects.filter(pk=response.json()["id"])
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                # dispatched_at is stamped with the job row, right before the commit.
                sent, started = job.values_list("dispatched_at", "started_at").first()
                if started:
                    samples.append((started - sent).total_seconds())
                    break
                time.sleep(0.002)
            while job.filter(status__in=unfinished).exists():
                time.sleep(0.01)
    connection.close()
    return {
        "jobs": len(samples),
        "p50_ms": _ms(percentile(samples, 0.5)),
        "p99_ms": _ms(percentile(samples, 0.99)),
        "admission_with_publish_p50_ms": _ms(percentile(posts, 0.5)),
    }


# --- end to end ----------------------------------------------------------------------------

# The worker stages, in pipeline order (generation.timing).
WORKER_STAGES = (
    "claim",
    "checks",
    "model",
    "inputs",
    "sampling",
    "verify",
    "frames",
    "encode",
    "sign",
    "previews",
    "store",
    "finish",
)


def _start_worker(log_path: Path) -> subprocess.Popen:
    """`celery -A config worker -Q gpu` as docs/operations.md runs it, logging to `log_path`;
    returns once it says it is warm."""
    env = {**os.environ, "DEBUG": "0", "PYTHONUNBUFFERED": "1"}
    command = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "config",
        "worker",
        "-Q",
        "gpu",
        "--concurrency",
        "1",
        "--prefetch-multiplier",
        "1",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
        "--loglevel",
        "INFO",
        "--hostname",
        f"bench-gpu-{os.getpid()}@%h",
    ]
    log = log_path.open("wb")
    worker = subprocess.Popen(
        command,
        cwd=settings.BASE_DIR,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        text = log_path.read_text(errors="replace")
        if WORKER_READY in text and " ready." in text:
            return worker
        if WARM_FAILED in text:
            _stop(worker)
            raise RuntimeError(f"the worker could not build its engine:\n{text[-3000:]}")
        if worker.poll() is not None:
            raise RuntimeError(f"the worker exited ({worker.returncode}):\n{text[-3000:]}")
        time.sleep(0.1)
    _stop(worker)
    raise RuntimeError(f"the worker did not get ready:\n{log_path.read_text()[-3000:]}")


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _spinners(k: int) -> list[subprocess.Popen]:
    return [
        subprocess.Popen([sys.executable, "-c", "while True: pass"], start_new_session=True)
        for _ in range(k)
    ]


def _worker_stages(log_path: Path) -> dict[str, dict]:
    found = {}
    for line in log_path.read_text(errors="replace").splitlines():
        match = STAGES_LINE.search(line)
        if match:
            found[match.group(1)] = json.loads(match.group(2))
    return found


async def _run_jobs(token: str, n: int) -> list[dict]:
    from asgiref.sync import sync_to_async
    from channels.testing import WebsocketCommunicator
    from django.db import connections

    from config.asgi import application
    from generation.models import Generation

    client = Client(HTTP_AUTHORIZATION=f"Bearer {token}", HTTP_HOST="localhost")
    socket = WebsocketCommunicator(
        application, "/ws/", headers=[(b"authorization", f"Bearer {token}".encode())]
    )
    connected, _ = await socket.connect(timeout=10)
    if not connected:
        raise RuntimeError("the websocket did not connect")
    await socket.receive_json_from(timeout=10)  # hello
    post = sync_to_async(client.post)
    jobs = []
    try:
        for i in tqdm(range(n), desc="e2e", unit="job"):
            began = time.time()
            response = await post(
                GENERATIONS,
                {"prompt": f"a red ball bounces to the right {i}", "seed": 1000 + i},
                content_type="application/json",
            )
            admitted = time.time()
            if response.status_code != 202:
                raise RuntimeError(f"admission answered {response.status_code}")
            job_id = response.json()["id"]
            while True:
                event = await socket.receive_json_from(timeout=300)
                if event.get("generation_id") != job_id:
                    continue
                if event["type"] == "generation.progress":
                    continue
                if event["type"] != "generation.succeeded":
                    raise RuntimeError(f"job {job_id} ended with {event}")
                break
            received = time.time()
            dispatched = await sync_to_async(
                lambda job_id=job_id: Generation.objects.get(pk=job_id).dispatched_at
            )()
            jobs.append(
                {
                    "id": job_id,
                    "posted": began,
                    "admitted": admitted,
                    "dispatched": dispatched.timestamp(),
                    "event": received,
                }
            )
            await asyncio.sleep(0.5)  # an idle worker for the next job
    finally:
        await socket.disconnect()
        await sync_to_async(connections.close_all)()
    return jobs


def _e2e(token: str, n: int, *, busy: int) -> dict:
    workdir = Path(tempfile.mkdtemp(prefix="riff-bench-e2e-"))
    log_path = workdir / "worker.log"
    worker = _start_worker(log_path)
    spinners: list[subprocess.Popen] = []
    load = [round(os.getloadavg()[0], 2)]
    try:
        spinners = _spinners(busy)
        jobs = asyncio.run(_run_jobs(token, n))
        load.append(round(os.getloadavg()[0], 2))
        deadline = time.monotonic() + 10
        while True:
            stages = _worker_stages(log_path)
            if all(job["id"] in stages for job in jobs) or time.monotonic() > deadline:
                break
            time.sleep(0.1)
    finally:
        for spinner in spinners:
            _stop(spinner)
        _stop(worker)
    warm_line = next(
        (line for line in log_path.read_text().splitlines() if WORKER_READY in line), ""
    )
    shutil.rmtree(workdir, ignore_errors=True)
    return {**_e2e_report(jobs, stages, busy=busy, warm_line=warm_line), "box_load_1m": load}


def _e2e_report(jobs: list[dict], stages: dict[str, dict], *, busy: int, warm_line: str) -> dict:
    per_job = []
    for job in jobs:
        worker = stages.get(job["id"])
        if worker is None:
            continue
        s = worker["stages"]
        engine = s.get("sampling", 0.0) - s.get("progress", 0.0)
        e2e = job["event"] - job["posted"]
        row = {
            "engine_s": round(engine, 3),
            "e2e_s": round(e2e, 3),
            "worker_wall_s": worker["finished"] - worker["started"],
            "worker_cpu_s": worker.get("cpu", 0.0),
            "overhead_s": round(e2e - engine, 3),
            # The POST's round trip in-process: admission, commit, broker publish, response.
            "admission": job["admitted"] - job["posted"],
            # From the job row (stamped just before the commit) to the task starting on the
            # worker: commit, publish, the broker hop and the worker picking the message up.
            "dispatch": worker["started"] - job["dispatched"],
            **{name: s.get(name, 0.0) for name in WORKER_STAGES},
            "progress": s.get("progress", 0.0),
            "worker_other": (worker["finished"] - worker["started"])
            - sum(s.get(name, 0.0) for name in WORKER_STAGES),
            # From the worker publishing the event (after its commit) to the client having it.
            "event": job["event"] - worker["finished"],
        }
        per_job.append(row)
    if not per_job:
        return {"jobs": 0}
    e2e = [r["e2e_s"] for r in per_job]
    engine = [r["engine_s"] for r in per_job]
    overhead = [r["overhead_s"] for r in per_job]
    breakdown_keys = ["admission", "dispatch", *WORKER_STAGES, "worker_other", "event"]
    return {
        "jobs": len(per_job),
        "busy_spinners": busy,
        "worker": warm_line.split("]")[-1].strip(),
        "engine_sampling_s": {"p50": round(percentile(engine, 0.5), 3), "per_job": engine},
        "e2e_s": {
            "p50": round(percentile(e2e, 0.5), 3),
            "p90": round(percentile(e2e, 0.9), 3),
            "per_job": e2e,
        },
        "overhead_s": {
            "p50": round(percentile(overhead, 0.5), 3),
            "max": round(max(overhead), 3),
        },
        "within_engine_plus_1s": all(o <= 1.0 for o in overhead),
        # The worker's CPU seconds per job and its wall time over them: about 1 on an idle
        # box; on a busy one the ratio grows with the CPU share lost, the CPU seconds don't.
        "worker_cpu_s_p50": round(statistics.median(r["worker_cpu_s"] for r in per_job), 3),
        "worker_wall_over_cpu_p50": round(
            statistics.median(r["worker_wall_s"] / max(r["worker_cpu_s"], 1e-9) for r in per_job),
            2,
        ),
        # Median per stage, ms; `sampling` includes `progress` (the heartbeats).
        "stages_p50_ms": {
            key: _ms(statistics.median(r[key] for r in per_job))
            for key in [*breakdown_keys[:6], "progress", *breakdown_keys[6:]]
        },
    }

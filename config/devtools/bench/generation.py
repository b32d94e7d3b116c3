"""Benchmarks of the generation front door (`manage.py bench_generation`): admission
throughput/latency and dispatch latency.

Admission: authenticated `POST /api/v1/generations` through the full Django/DRF stack (token
auth, quota with a row lock, safety rules, two cameo consent checks, the job row, the outbox
hook) in-process, so the figure is the application's cost without network or server overhead.
Dispatch: from the admission's commit to a real Celery worker (in a thread, on the real Redis
broker) claiming the job. Rows it creates are deleted at the end.
"""

from __future__ import annotations

import os
import statistics
import time
from datetime import date

from django.db import connection
from django.test import Client
from django.test.utils import override_settings
from tqdm import tqdm

GENERATIONS = "/api/v1/generations"
# Ten rules that never match: admission reads and tests all of them on every request.
SAFETY_RULES = 10


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def bench_generation(*, requests: int, dispatch: int) -> dict:
    """Creates a cameo owner and a caller with grants to two active cameos, measures, and
    deletes everything it created (also when a measurement fails)."""
    from accounts.models import User
    from accounts.tokens import token_issue
    from cameos.models import Cameo, CameoGrant, CameoKind, CameoStatus
    from cameos.services import cameo_create
    from generation.models import Generation
    from moderation.models import SafetyRule

    stamp = str(int(time.time()))
    owner = User.objects.create_user(
        f"benchowner{stamp}", "", "x" * 12, birth_date=date(1990, 1, 1)
    )
    caller = User.objects.create_user(
        f"benchcaller{stamp}", "", "x" * 12, birth_date=date(1990, 1, 1)
    )
    cameos = []
    for i in range(2):
        cameo = cameo_create(
            owner=owner, kind=CameoKind.OBJECT, display_name="bench", handle=f"bench{stamp}x{i}"
        )
        # Verification needs a recording and a worker; the bench measures admission, not that.
        Cameo.objects.filter(pk=cameo.pk).update(status=CameoStatus.ACTIVE)
        CameoGrant.objects.create(cameo=cameo, user=caller)
        cameos.append(str(cameo.pk))
    rules = [
        SafetyRule.objects.create(name=f"bench{i}", pattern=f"forbiddenword{i}")
        for i in range(SAFETY_RULES)
    ]
    client = Client(HTTP_AUTHORIZATION=f"Bearer {token_issue(user=caller)}", HTTP_HOST="localhost")
    results: dict = {"host": {"cpus": os.cpu_count()}}
    try:
        with override_settings(RIFF_DAILY_QUOTA=10**9, CELERY_TASK_ALWAYS_EAGER=False):
            results["admission"] = _admission(client, cameos, requests)
            results["dispatch"] = _dispatch(client, dispatch)
    finally:
        Generation.objects.filter(owner=caller).delete()
        for rule in rules:
            rule.delete()
        Cameo.objects.filter(owner=owner).delete()
        User.objects.filter(pk__in=[owner.pk, caller.pk]).delete()
    return results


def _admission(client: Client, cameos: list[str], n: int) -> dict:
    from unittest import mock

    latencies = []
    # Measure admission alone: the broker publish is patched out here and measured below.
    with mock.patch("generation.dispatch.send"):
        for _ in range(5):
            client.post(
                GENERATIONS,
                {"prompt": "warm up", "cameos": cameos},
                content_type="application/json",
            )
        started = time.perf_counter()
        for i in tqdm(range(n), desc="admission", unit="req"):
            t0 = time.perf_counter()
            response = client.post(
                GENERATIONS,
                {"prompt": f"a red ball bounces {i}", "cameos": cameos},
                content_type="application/json",
            )
            latencies.append(time.perf_counter() - t0)
            assert response.status_code == 202, response.content
        elapsed = time.perf_counter() - started
    return {
        "requests": n,
        "cameos_per_request": len(cameos),
        "requests_per_s": round(n / elapsed, 1),
        "p50_ms": round(percentile(latencies, 0.5) * 1000, 2),
        "p99_ms": round(percentile(latencies, 0.99) * 1000, 2),
        "mean_ms": round(statistics.mean(latencies) * 1000, 2),
    }


def _dispatch(client: Client, n: int) -> dict:
    from celery.contrib.testing.worker import start_worker

    from config.celery import app
    from generation.models import Generation, GenerationStatus

    samples = []
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
            response = client.post(
                GENERATIONS, {"prompt": f"dispatch {i}"}, content_type="application/json"
            )
            job = Generation.objects.filter(pk=response.json()["id"])
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                # dispatched_at is stamped in the on_commit hook, right after the commit.
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
        "p50_ms": round(percentile(samples, 0.5) * 1000, 2),
        "p99_ms": round(percentile(samples, 0.99) * 1000, 2),
    }

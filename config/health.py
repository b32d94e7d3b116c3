"""Load-balancer probes. `/healthz`: the process answers (touches nothing).
`/readyz`: 200 when PostgreSQL answers, 503 when it doesn't. Redis is reported but does not
decide: without it the API degrades and keeps serving (config.core.redis), and every web process
sees the same Redis, so failing readiness on it would take them all out of the load balancer
at once and turn a degraded API back into a total outage."""

from __future__ import annotations

import logging

from django.core.cache import cache
from django.db import connection
from django.http import JsonResponse

logger = logging.getLogger(__name__)


def healthz(request):
    return JsonResponse({"status": "ok"})


def _check_db() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


def _check_redis() -> None:
    client = cache._cache.get_client(write=True)  # the raw redis-py client of RedisCache
    if not client.ping():
        raise RuntimeError("redis ping failed")


def readyz(request):
    checks: dict[str, str] = {}
    for name, check in (("database", _check_db), ("redis", _check_redis)):
        try:
            check()
            checks[name] = "ok"
        except Exception as exc:
            logger.warning("readiness check %s failed: %s", name, exc)
            checks[name] = "down"
    if checks["database"] != "ok":
        status = "unavailable"
    else:
        status = "ok" if checks["redis"] == "ok" else "degraded"
    return JsonResponse(
        {"status": status, "checks": checks}, status=503 if status == "unavailable" else 200
    )

"""Prometheus metrics: request counts and latencies by route, served at `/metrics`.

With several worker processes, set PROMETHEUS_MULTIPROC_DIR (see docs/operations.md).
`/metrics` is not public: it answers client addresses in RIFF_METRICS_ALLOWED_IPS (loopback by
default) or a scraper sending `Authorization: Bearer <RIFF_METRICS_TOKEN>`; anyone else gets
403 with the error envelope.
"""

from __future__ import annotations

import hmac
import os
import time

from django.conf import settings
from django.http import HttpResponse, JsonResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)

from .core.clientip import address_in, client_ip, forwarded_by_trusted_proxy, parse_address
from .core.errors import envelope

REQUESTS = Counter("riff_http_requests_total", "HTTP requests", ["method", "route", "status"])
LATENCY = Histogram(
    "riff_http_request_seconds",
    "HTTP request latency",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


class MetricsMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        start = time.perf_counter()
        response = self.get_response(request)
        match = getattr(request, "resolver_match", None)
        # The route pattern, not the path, so ids don't explode the label space.
        route = match.route if match is not None else "unmatched"
        LATENCY.labels(request.method, route).observe(time.perf_counter() - start)
        REQUESTS.labels(request.method, route, str(response.status_code)).inc()
        return response


def _metrics_allowed(request) -> bool:
    token = settings.RIFF_METRICS_TOKEN
    if token:
        scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(
            presented.strip().encode(), token.encode()
        ):
            return True
    if "x-forwarded-for" in request.headers and not forwarded_by_trusted_proxy(request):
        # Something proxied this request but is not a proxy we know, so the peer address is
        # the proxy's (often loopback on a single box), not the caller's: no address grant.
        return False
    return address_in(parse_address(client_ip(request)), settings.RIFF_METRICS_ALLOWED_IPS)


def metrics_view(request):
    if not _metrics_allowed(request):
        return JsonResponse(
            envelope("permission_denied", "Metrics are restricted (docs/operations.md)."),
            status=403,
        )
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        data = generate_latest(registry)
    else:
        data = generate_latest()
    return HttpResponse(data, content_type=CONTENT_TYPE_LATEST)

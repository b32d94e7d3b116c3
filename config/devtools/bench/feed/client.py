"""Plain HTTP to the server under test: the one-request check before each scenario and the
unmeasured pass that collects every viewer's second page."""

from __future__ import annotations

import http.client
import json
import statistics
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

from django.core.management.base import CommandError
from tqdm import tqdm


def _headers(token: str | None, body: bytes | None) -> dict:
    headers = {"X-Forwarded-Proto": "https"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if body is not None:
        headers["Content-Type"] = "application/json"
    return headers


def http_call(
    conn: http.client.HTTPConnection, method: str, path: str, token: str | None, body=None
) -> tuple[int, bytes]:
    data = None if body is None else json.dumps(body).encode()
    conn.request(method, path, body=data, headers=_headers(token, data))
    resp = conn.getresponse()
    return resp.status, resp.read()


def preflight(port: int, entry: tuple, *, name: str, timeout: float) -> None:
    """One request of the scenario before measuring it: a 401 (or any non-2xx) stops the
    bench with the server's answer instead of producing figures for error responses."""
    method, path, token, *rest = entry
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        status, body = http_call(conn, method, path, token, rest[0] if rest else None)
    finally:
        conn.close()
    if not 200 <= status <= 299:
        raise CommandError(f"{name}: {method} {path} answered {status}: {body[:500]!r}")


def _next_path(link: str | None) -> str | None:
    if not link:
        return None
    parts = urlsplit(link)
    return parts.path + ("?" + parts.query if parts.query else "")


def collect_next_pages(
    port: int, tokens: list[str], *, kind: str, connections: int, timeout: float, quiet: bool
) -> dict:
    """GETs every viewer's first page of `kind` (unmeasured, `connections` at a time) and
    returns the second pages as request-list entries, the statuses, and the number of distinct
    authors among each viewer's first-page posts (For You caps posts per author)."""
    local = threading.local()

    def fetch(token: str) -> tuple[int, str | None, int | None]:
        conn = getattr(local, "conn", None) or http.client.HTTPConnection(
            "127.0.0.1", port, timeout=timeout
        )
        local.conn = conn
        try:
            status, body = http_call(conn, "GET", f"/api/v1/feed?kind={kind}", token)
        except (OSError, http.client.HTTPException):
            conn.close()
            local.conn = None
            return 0, None, None
        if status != 200:
            return status, None, None
        data = json.loads(body)
        authors = {
            str(((item.get("post") or {}).get("author") or {}).get("id"))
            for item in data.get("results", [])
            if item.get("kind", "post") == "post"
        }
        return status, _next_path(data.get("next")), len(authors)

    statuses: Counter = Counter()
    entries, distinct = [], []
    with ThreadPoolExecutor(max_workers=connections) as pool:
        results = pool.map(fetch, tokens)
        for token, (status, nxt, authors) in tqdm(
            zip(tokens, results, strict=True),
            total=len(tokens),
            desc=f"collect {kind} page 2",
            unit="viewer",
            disable=quiet,
        ):
            statuses[str(status)] += 1
            if nxt:
                entries.append(("GET", nxt, token))
            if authors:
                distinct.append(authors)
    return {
        "entries": entries,
        "statuses": dict(statuses),
        "distinct_authors_page1": {
            "viewers": len(distinct),
            "mean": round(statistics.fmean(distinct), 2) if distinct else None,
            "min": min(distinct, default=None),
            "max": max(distinct, default=None),
        },
    }

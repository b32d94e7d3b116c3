"""Assertions and helpers used across the suite."""

from __future__ import annotations

import threading


def assert_error(response, status: int, code: str, field: str | None = None) -> dict:
    assert response.status_code == status, (response.status_code, response.content[:500])
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert error["code"] == code, error
    assert isinstance(error["message"], str) and error["message"]
    if field is not None:
        assert field in error.get("fields", {}), error
    return error


async def generation_events(ws, job_id: str, *, timeout: float = 120) -> tuple[list[float], dict]:
    """Reads a websocket (channels.testing.WebsocketCommunicator) until job `job_id` ends:
    the progress values it reported, in order, and its final event (`generation.succeeded` or
    `generation.failed`). Other jobs' events are skipped."""
    progress: list[float] = []
    while True:
        event = await ws.receive_json_from(timeout=timeout)
        if event.get("generation_id") != job_id:
            continue
        if event["type"] == "generation.progress":
            progress.append(event["progress"])
        elif event["type"] in ("generation.succeeded", "generation.failed"):
            return progress, event


def race(n: int, attempt) -> list:
    """Runs `attempt(i)` for i in 0..n-1 in n threads released together (a barrier) and
    returns their results in the order they finished. Each thread closes its own database
    connection (tests that race need `django_db(transaction=True)`)."""
    from django.db import connection

    results: list = []
    barrier = threading.Barrier(n)

    def run(i: int) -> None:
        try:
            barrier.wait()
            results.append(attempt(i))
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results

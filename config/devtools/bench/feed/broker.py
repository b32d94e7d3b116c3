"""The Celery queues in Redis, cleaned directly: what the bench's requests left there (the
admission scenario's generations, the order refreshes the worker had not run)."""

from __future__ import annotations

import json

from django.conf import settings


def purge_broker(ids: set[str], *, task: str | None = None) -> int:
    """Removes from every Celery queue list (priority variants included) the messages whose
    arguments name one of `ids` (and, with `task`, that run that task); other messages stay."""
    if not ids:
        return 0
    import redis

    from config.celery import app

    client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    removed = 0
    for queue in app.conf.task_queues:
        for key in client.scan_iter(match=f"{queue.name}*", count=1000):
            if client.type(key) != b"list":
                continue
            for raw in client.lrange(key, 0, -1):
                if _names_any(raw, ids) and (task is None or _task_of(raw) == task):
                    removed += client.lrem(key, 1, raw)
    return removed


def _names_any(raw: bytes, ids: set[str]) -> bool:
    try:
        message = json.loads(raw)
        text = str(message.get("headers", {}).get("argsrepr", ""))
    except (ValueError, AttributeError):
        return False
    return any(i in text for i in ids)


def _task_of(raw: bytes) -> str | None:
    try:
        return json.loads(raw).get("headers", {}).get("task")
    except (ValueError, AttributeError):
        return None

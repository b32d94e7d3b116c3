"""Celery wiring: every task has exactly one route (config.celery.TASK_QUEUES) and nothing else
picks a queue; beat names only real tasks; the idempotency purge lives with accounts."""

from __future__ import annotations

import ast
import importlib
from datetime import timedelta
from pathlib import Path

import pytest
from django.apps import apps
from django.conf import settings
from django.utils import timezone

from config.celery import TASK_QUEUES, app

APPS = ("accounts", "cameos", "rights", "generation", "feed", "remix", "moderation", "config")


def _registered() -> dict:
    for config in apps.get_app_configs():
        try:
            importlib.import_module(f"{config.name}.tasks")
        except ModuleNotFoundError as exc:
            if exc.name != f"{config.name}.tasks":
                raise
    return {name: task for name, task in app.tasks.items() if not name.startswith("celery.")}


def test_every_task_has_exactly_one_route_and_every_route_a_task():
    registered = _registered()
    assert set(registered) == set(TASK_QUEUES)
    for name in registered:
        matches = [
            pattern
            for pattern in app.conf.task_routes
            if pattern == name or (pattern.endswith("*") and name.startswith(pattern[:-1]))
        ]
        assert matches == [name], (name, matches)
        assert app.amqp.router.route({}, name)["queue"].name == TASK_QUEUES[name]


def test_queues_are_the_declared_ones():
    declared = {queue.name for queue in app.conf.task_queues}
    assert set(TASK_QUEUES.values()) <= declared == {"default", "media", "gpu"}
    assert TASK_QUEUES["generation.tasks.generation_run"] == "gpu"
    assert TASK_QUEUES["cameos.tasks.cameo_verify"] == "media"


def _queue_keywords(path: Path) -> list[str]:
    """`queue=` keyword arguments anywhere in a module (decorators, apply_async, publish)."""
    tree = ast.parse(path.read_text())
    return [
        f"{path}:{node.lineno}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        for keyword in node.keywords
        if keyword.arg == "queue"
    ]


def test_no_decorator_or_send_picks_its_own_queue():
    base = Path(settings.BASE_DIR)
    found = [
        hit
        for name in APPS
        for path in (base / name).rglob("*.py")
        # The routes themselves, and the bench tool that measures sends on a scratch queue of
        # its own (`quick.py publish`).
        if path.relative_to(base).as_posix()
        not in ("config/celery.py", "config/devtools/bench/quick.py")
        for hit in _queue_keywords(path)
    ]
    assert found == []


def test_beat_runs_only_registered_tasks():
    registered = _registered()
    scheduled = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert scheduled <= set(registered), scheduled - set(registered)
    assert settings.CELERY_BEAT_SCHEDULE["idempotency-purge"]["task"] == (
        "accounts.tasks.idempotency_purge"
    )


@pytest.mark.django_db
def test_idempotency_purge_deletes_only_expired_records(user):
    from accounts.idempotency import KEEP_FOR
    from accounts.models import IdempotencyRecord
    from accounts.tasks import idempotency_purge

    old = IdempotencyRecord.objects.create(user=user, key="old", fingerprint="f")
    IdempotencyRecord.objects.filter(pk=old.pk).update(
        created_at=timezone.now() - KEEP_FOR - timedelta(minutes=1)
    )
    fresh = IdempotencyRecord.objects.create(user=user, key="fresh", fingerprint="f")
    assert idempotency_purge() == 1
    assert list(IdempotencyRecord.objects.values_list("pk", flat=True)) == [fresh.pk]

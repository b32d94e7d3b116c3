"""`manage.py generation_fleet`: the generation workers that are up, what each consumes, and
the engines whose jobs nobody would run.

    $ python manage.py generation_fleet
    gen-wan2.1-t2v-1.3b-l40s@gpu-1   queues gpu.wan.l40s   capacity 1   running 1
    gen-riff-world-cpu@box-2          queues gpu            capacity 2   running 0
    no worker consumes gpu.wan.h100 (wan2.1-t2v-1.3b@1280x720): those jobs wait, queued

It asks the workers themselves over the broker (Celery's remote control: `active_queues`,
`stats`, `active`), so it shows what is running now, not what was configured. Exits 1 when a
routed queue (settings.RIFF_GENERATION_QUEUES, the default engine's `gpu`) has no consumer:
usable as a deployment check.
"""

from __future__ import annotations

from celery import current_app
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from config.core.routing import GENERATION_QUEUE, is_generation_queue


def routed_queues() -> dict[str, list[str]]:
    """{queue: [the routes that send jobs there]}: every configured route, and `gpu` for the
    engines no route names (the default engine's among them)."""
    queues: dict[str, list[str]] = {GENERATION_QUEUE: []}
    for route, queue in settings.RIFF_GENERATION_QUEUES.items():
        queues.setdefault(queue, []).append(route)
    unrouted = [
        name
        for name in dict.fromkeys([settings.RIFF_ENGINE, *settings.RIFF_VIDEO_MODELS])
        if name not in settings.RIFF_GENERATION_QUEUES
    ]
    queues[GENERATION_QUEUE] += unrouted
    if not queues[GENERATION_QUEUE]:
        del queues[GENERATION_QUEUE]  # every engine is routed elsewhere: nothing goes to `gpu`
    return queues


def fleet(*, timeout: float) -> dict[str, dict]:
    """{worker: {"queues", "capacity", "running"}} of the workers consuming generation
    queues, as they answer within `timeout` seconds."""
    inspect = current_app.control.inspect(timeout=timeout)
    queues = inspect.active_queues() or {}
    stats = inspect.stats() or {}
    active = inspect.active() or {}
    workers = {}
    for name, consumed in queues.items():
        names = sorted(q["name"] for q in consumed if is_generation_queue(q["name"]))
        if not names:
            continue
        pool = (stats.get(name) or {}).get("pool") or {}
        workers[name] = {
            "queues": names,
            "capacity": pool.get("max-concurrency"),
            "running": len(active.get(name) or []),
        }
    return workers


class Command(BaseCommand):
    help = "The generation workers that are up, and the routed queues nobody consumes."

    def add_arguments(self, parser):
        parser.add_argument("--timeout", type=float, default=2.0, help="seconds to wait")

    def handle(self, *args, timeout, **options):
        workers = fleet(timeout=timeout)
        for name, worker in sorted(workers.items()):
            self.stdout.write(
                f"{name}  queues {','.join(worker['queues'])}  "
                f"capacity {worker['capacity']}  running {worker['running']}"
            )
        if not workers:
            self.stdout.write("no generation worker answered")
        served = {queue for worker in workers.values() for queue in worker["queues"]}
        missing = {q: routes for q, routes in routed_queues().items() if q not in served}
        for queue, routes in sorted(missing.items()):
            self.stdout.write(
                f"no worker consumes {queue} ({', '.join(routes)}): those jobs wait, queued"
            )
        if missing:
            raise CommandError(f"{len(missing)} routed queue(s) without a worker")

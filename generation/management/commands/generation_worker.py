"""`manage.py generation_worker`: one generation worker of a fleet, declaring what it runs.

    manage.py generation_worker --engine wan2.1-t2v-1.3b --gpu-class l40s --capacity 1 \\
        --metrics-port 9101

It runs one engine (a name from RIFF_ENGINES, or riff-world), consumes the queues
RIFF_GENERATION_QUEUES routes that engine's jobs to (or those given with --queues), runs
`--capacity` jobs at once (1: the solo pool, the usual one per GPU; more: threads sharing the
loaded model) and serves its Prometheus metrics (generation.metrics) on --metrics-port. The
engine is loaded and run once before the first job (RIFF_WORKER_WARM). docs/operations.md,
"Fleet", has the whole recipe.
"""

from __future__ import annotations

import socket

from celery import current_app
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from config.core.routing import engine_queues, is_generation_queue


class Command(BaseCommand):
    help = "Run a generation worker for one engine (docs/operations.md, Fleet)."

    def add_arguments(self, parser):
        parser.add_argument("--engine", default=None, help="engine name (default RIFF_ENGINE)")
        parser.add_argument(
            "--queues", default="", help="comma-separated; default: the engine's routed queues"
        )
        parser.add_argument("--capacity", type=int, default=1, help="jobs at once (default 1)")
        parser.add_argument("--gpu-class", default="cpu", help="a label: h100, l40s, cpu, ...")
        parser.add_argument("--metrics-port", type=int, default=None)
        parser.add_argument("--loglevel", default="info")

    def handle(self, *args, engine, queues, capacity, gpu_class, metrics_port, loglevel, **_):
        from generation import metrics
        from generation.engine.backends import registered_engines

        engine = engine or settings.RIFF_ENGINE
        if engine not in registered_engines():
            raise CommandError(
                f"unknown engine {engine!r}: register it in RIFF_ENGINES "
                f"(known: {', '.join(registered_engines())})"
            )
        names = [q.strip() for q in queues.split(",") if q.strip()] or engine_queues(engine)
        wrong = [name for name in names if not is_generation_queue(name)]
        if wrong:
            raise CommandError(f"not generation queues (gpu, gpu.<name>): {', '.join(wrong)}")
        if capacity < 1:
            raise CommandError("--capacity must be at least 1")
        if engine != settings.RIFF_ENGINE:
            # This process runs that engine: its options are the ones it was registered with.
            settings.RIFF_ENGINE = engine
            settings.RIFF_ENGINE_OPTIONS = {}
        node = f"gen-{engine}-{gpu_class}"
        hostname = f"{node}@{socket.gethostname()}"
        port = metrics_port or settings.RIFF_WORKER_METRICS_PORT
        if port:
            metrics.serve(int(port), address=settings.RIFF_WORKER_METRICS_ADDRESS)
        metrics.declare(
            engine=engine, gpu_class=gpu_class, queues=names, capacity=capacity, hostname=hostname
        )
        self.stdout.write(
            f"generation worker {hostname}: engine {engine}, queues {','.join(names)}, "
            f"capacity {capacity}" + (f", metrics on :{port}" if port else "")
        )
        # the project's Celery app (config.celery), current since the config package loaded
        current_app.worker_main(
            [
                "worker",
                "--queues",
                ",".join(names),
                "--pool",
                "solo" if capacity == 1 else "threads",
                "--concurrency",
                str(capacity),
                "--hostname",
                hostname,
                "--loglevel",
                loglevel,
            ]
        )

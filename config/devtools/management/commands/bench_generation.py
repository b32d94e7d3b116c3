"""`manage.py bench_generation`: admission requests/s and commit-to-worker dispatch latency
(config.devtools.bench.generation).

    python manage.py bench_generation --requests 300 --out docs/bench-generation.json
"""

from __future__ import annotations

import json
from pathlib import Path

from django.core.management.base import BaseCommand

from config.devtools.bench.generation import bench_generation


class Command(BaseCommand):
    help = "Measure admission requests/s with p50/p99 and commit-to-worker dispatch latency."

    def add_arguments(self, parser):
        parser.add_argument("--requests", type=int, default=300)
        parser.add_argument("--dispatch", type=int, default=30)
        parser.add_argument("--out", default="")

    def handle(self, *args, requests: int, dispatch: int, out: str, **options):
        results = bench_generation(requests=requests, dispatch=dispatch)
        text = json.dumps(results, indent=2)
        self.stdout.write(text)
        if out:
            Path(out).write_text(text + "\n")

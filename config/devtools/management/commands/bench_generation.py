"""`manage.py bench_generation`: admission next to `GET /me`, commit-to-worker dispatch latency,
and generations end to end on a real worker (config.devtools.bench.generation).

    python manage.py bench_generation --requests 300 --e2e 5 --out docs/bench-generation.json
    python manage.py bench_generation --requests 0 --dispatch 0 --e2e 5 --busy 2
"""

from __future__ import annotations

import json
from pathlib import Path

from django.core.management.base import BaseCommand

from config.devtools.bench.generation import bench_generation


class Command(BaseCommand):
    help = (
        "Measure admission requests/s next to GET /me, commit-to-worker dispatch latency, and "
        "end-to-end generations on a real worker with a websocket client."
    )

    def add_arguments(self, parser):
        parser.add_argument("--requests", type=int, default=300, help="admission and /me pairs")
        parser.add_argument("--dispatch", type=int, default=30, help="dispatch samples")
        parser.add_argument(
            "--e2e", type=int, default=5, help="generations end to end (0: skip; runs a worker)"
        )
        parser.add_argument(
            "--busy", type=int, default=0, help="CPU-spinning processes during the e2e run"
        )
        parser.add_argument("--out", default="")

    def handle(self, *args, requests, dispatch, e2e, busy, out, **options):
        results = bench_generation(requests=requests, dispatch=dispatch, e2e=e2e, busy=busy)
        text = json.dumps(results, indent=2)
        self.stdout.write(text)
        if out:
            Path(out).write_text(text + "\n")

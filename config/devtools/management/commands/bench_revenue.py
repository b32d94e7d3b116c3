"""`manage.py bench_revenue`: revenue events split and posted per second, single client and
N concurrent clients, against a plain insert baseline (config.devtools.bench.revenue). Writes
permanent ledger rows: use a development or scratch database."""

from __future__ import annotations

import json
from pathlib import Path

from django.core.management.base import BaseCommand

from config.devtools.bench.revenue import bench_revenue


class Command(BaseCommand):
    help = "Benchmark revenue events (split + posted) per second vs a plain insert baseline."

    def add_arguments(self, parser):
        parser.add_argument("--out", default="docs/bench-revenue.json")
        parser.add_argument("--events", type=int, default=2000)
        parser.add_argument("--concurrency", type=int, default=8)

    def handle(self, *args, **opts):
        report = bench_revenue(events=opts["events"], concurrency=opts["concurrency"])
        out = Path(opts["out"])
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2) + "\n")
        for key, value in report.items():
            self.stdout.write(f"{key}: {value}")

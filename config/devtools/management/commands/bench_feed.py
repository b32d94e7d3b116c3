"""`manage.py bench_feed`: feed latency and throughput against a real uvicorn server
(config.devtools.bench.feed). Needs seeded data (`manage.py seed_feed`)."""

from __future__ import annotations

import json
from pathlib import Path

from django.core.management.base import BaseCommand

from config.devtools.bench.feed import bench_feed, report_lines


class Command(BaseCommand):
    help = "Benchmark the feed (p50/p99, requests/s per kind) against a real uvicorn server."

    def add_arguments(self, parser):
        parser.add_argument("--out", default="docs/bench-feed.json")
        parser.add_argument("--viewers", type=int, default=50)
        parser.add_argument(
            "--requests", type=int, default=1000, help="page-1 requests per scenario"
        )
        parser.add_argument("--concurrency", type=int, default=8)
        parser.add_argument("--workers", type=int, default=2, help="uvicorn worker processes")
        parser.add_argument("--pages", type=int, default=3, help="pages per scroll (via next)")
        parser.add_argument("--min-follows", type=int, default=5)
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument(
            "--timeout", type=float, default=30.0, help="per request (also statement_timeout)"
        )
        parser.add_argument(
            "--max-seconds", type=float, default=300.0, help="no new task after this, per scenario"
        )

    def handle(self, *args, **opts):
        report = bench_feed(
            viewers=opts["viewers"],
            requests=opts["requests"],
            concurrency=opts["concurrency"],
            workers=opts["workers"],
            pages=opts["pages"],
            min_follows=opts["min_follows"],
            seed=opts["seed"],
            timeout=opts["timeout"],
            max_seconds=opts["max_seconds"],
            quiet=opts["verbosity"] == 0,
        )
        out = Path(opts["out"])
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2) + "\n")
        for line in report_lines(report):
            self.stdout.write(line)

"""`manage.py bench_feed`: serving speed measured from outside with wrk (issue #31;
config.devtools.bench.feed, docs/bench-feed.md). Needs seeded data (`manage.py seed_feed`)."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand
from django.db import connection

from config.devtools.bench.feed import bench_feed, merge_report, report_lines


class Command(BaseCommand):
    help = (
        "Benchmark /healthz, /me, the feeds (first and second pages) and generation admission "
        "with wrk against a real uvicorn server; figures as ratios to /me."
    )

    def add_arguments(self, parser):
        parser.add_argument("--out", default="docs/bench-feed.json")
        parser.add_argument(
            "--label",
            default=None,
            help="this run's key in --out (e.g. 200k, 1m); default: the database name",
        )
        parser.add_argument("--viewers", type=int, default=2000, help="distinct seeded viewers")
        parser.add_argument("--connections", type=int, default=8, help="wrk connections")
        parser.add_argument("--duration", type=int, default=10, help="measured s per scenario")
        parser.add_argument("--warmup", type=int, default=2, help="unmeasured s per scenario")
        parser.add_argument("--workers", type=int, default=2, help="uvicorn worker processes")
        parser.add_argument(
            "--admission-callers",
            type=int,
            default=200,
            help="viewers who POST /generations (each granted the two bench cameos)",
        )
        parser.add_argument("--min-follows", type=int, default=5)
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument(
            "--timeout", type=float, default=30.0, help="per request (also statement_timeout)"
        )
        parser.add_argument(
            "--profile",
            action="store_true",
            help="py-spy the workers during /me, following and for_you first pages",
        )
        parser.add_argument(
            "--profile-dir", default=None, help="keep py-spy's raw stacks here (flamegraphs)"
        )
        parser.add_argument(
            "--inline",
            action="store_true",
            help="serve with RIFF_ASGI_INLINE=1 (requests on the event loop's thread)",
        )

    def handle(self, *args, **opts):
        quiet = opts["verbosity"] == 0
        report = bench_feed(
            viewers=opts["viewers"],
            connections=opts["connections"],
            duration=opts["duration"],
            warmup=opts["warmup"],
            workers=opts["workers"],
            admission_callers=opts["admission_callers"],
            min_follows=opts["min_follows"],
            seed=opts["seed"],
            timeout=opts["timeout"],
            profile=opts["profile"],
            profile_dir=Path(opts["profile_dir"]) if opts["profile_dir"] else None,
            inline=opts["inline"],
            quiet=quiet,
            log=(lambda line: None) if quiet else self.stdout.write,
        )
        label = opts["label"] or connection.settings_dict["NAME"]
        merge_report(Path(opts["out"]), label, report)
        for line in report_lines(report, label):
            self.stdout.write(line)

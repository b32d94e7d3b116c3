"""`manage.py bench_engine`: forward throughput, GFLOP/s vs torch.mm, seconds per clip
(config.devtools.bench.engine; torch is imported only when it runs)."""

from __future__ import annotations

import argparse

from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Benchmark the riff-world engine; writes a JSON report to --out."

    def add_arguments(self, parser):
        from config.devtools.bench.engine import add_arguments

        add_arguments(parser)

    def handle(self, *args, **options):
        from config.devtools.bench.engine import run_from_args

        run_from_args(argparse.Namespace(**options), log=lambda m: self.stdout.write(str(m)))

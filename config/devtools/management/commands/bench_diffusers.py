"""`manage.py bench_diffusers`: per-clip time and memory of the diffusers backend
(config.devtools.bench.diffusers; torch and diffusers are imported only when it runs)."""

from __future__ import annotations

import argparse

from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Per-clip time of the diffusers backend (tiny, Wan 1.3B-sized, or a local folder)."

    def add_arguments(self, parser):
        from config.devtools.bench.diffusers import add_arguments

        add_arguments(parser)

    def handle(self, *args, **options):
        from config.devtools.bench.diffusers import run

        run(argparse.Namespace(**options), log=lambda m: self.stdout.write(str(m)))

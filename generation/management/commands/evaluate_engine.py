"""manage.py evaluate_engine: score generated clips on held-out prompts (JSON + PNG report)."""

from __future__ import annotations

from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Evaluate the riff-world engine by image analysis; writes report.json/report.png."

    def add_arguments(self, parser):
        from generation.engine.evaluate import add_arguments

        add_arguments(parser)

    def handle(self, *args, **options):
        import argparse

        from generation.engine.evaluate import run_from_args

        run_from_args(argparse.Namespace(**options), log=lambda m: self.stdout.write(str(m)))

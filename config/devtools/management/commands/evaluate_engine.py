"""manage.py evaluate_engine: score generated clips on held-out prompts (JSON + PNG report).

manage.py evaluate_engine --n 96 --continuity-n 16 --out .data/engine-eval
manage.py evaluate_engine --card docs/engine-eval-stage16.json   # the model card's table
"""

from __future__ import annotations

from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Evaluate the riff-world engine by image analysis; writes report.json/report.png."

    def add_arguments(self, parser):
        from generation.engine.evaluation.run import add_arguments

        add_arguments(parser)

    def handle(self, *args, **options):
        import argparse

        from generation.engine.evaluation.run import run_from_args

        run_from_args(argparse.Namespace(**options), log=lambda m: self.stdout.write(str(m)))

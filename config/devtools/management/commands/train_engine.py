"""manage.py train_engine: train (or resume, or export) the riff-world video model.

manage.py train_engine --out .data/engine-runs/riff-world-v0 --threads 1
manage.py train_engine --out .data/engine-runs/riff-world-v0 --export
manage.py train_engine --device cuda --batch 128 --threads 8
"""

from __future__ import annotations

from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Train the riff-world engine on the procedural world (resumable); --export ships it."

    def add_arguments(self, parser):
        from generation.engine.training.cli import add_arguments

        add_arguments(parser)

    def handle(self, *args, **options):
        import argparse

        from generation.engine.training.cli import run_from_args

        ns = argparse.Namespace(**{k.replace("-", "_"): v for k, v in options.items()})
        run_from_args(ns, log=lambda m: self.stdout.write(str(m)))

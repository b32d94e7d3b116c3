"""`manage.py generation_capacity`: how many GPUs (worker slots) an engine needs.

    manage.py generation_capacity --per-day 20000 --clip-seconds 95
    manage.py generation_capacity --per-day 20000 --metrics-url http://gpu-1:9101/metrics \\
        --engine wan2.1-t2v-1.3b

The clip time is a measured mean: given, or read from a worker's own metrics (its
riff_generation_clip_seconds of succeeded jobs). The model is generation.metrics.capacity_plan;
docs/operations.md, "Fleet", explains it.
"""

from __future__ import annotations

import urllib.request

from django.core.management.base import BaseCommand, CommandError

from generation.metrics import capacity_plan, mean_clip_seconds


class Command(BaseCommand):
    help = "GPUs (worker slots) needed for N generations a day (docs/operations.md, Fleet)."

    def add_arguments(self, parser):
        parser.add_argument("--per-day", type=float, required=True)
        parser.add_argument("--clip-seconds", type=float, default=None)
        parser.add_argument("--metrics-url", default=None, help="a worker's /metrics")
        parser.add_argument("--engine", default=None, help="with --metrics-url")
        parser.add_argument("--peak-factor", type=float, default=2.0)
        parser.add_argument("--target-utilisation", type=float, default=0.8)
        parser.add_argument("--jobs-per-worker", type=int, default=1)

    def handle(self, *args, per_day, clip_seconds, metrics_url, engine, **options):
        source = "given"
        if (clip_seconds is None) == (metrics_url is None):
            raise CommandError("give one of --clip-seconds or --metrics-url (with --engine)")
        if metrics_url is not None:
            if not engine:
                raise CommandError("--metrics-url needs --engine")
            try:
                with urllib.request.urlopen(metrics_url, timeout=10) as answer:  # noqa: S310
                    scrape = answer.read().decode()
                clip_seconds, clips = mean_clip_seconds(scrape, engine)
            except (OSError, ValueError) as exc:
                raise CommandError(f"no clip time from {metrics_url}: {exc}") from exc
            source = f"mean of {clips} clips at {metrics_url}"
        try:
            plan = capacity_plan(
                per_day=per_day,
                clip_seconds=clip_seconds,
                peak_factor=options["peak_factor"],
                target_utilisation=options["target_utilisation"],
                jobs_per_worker=options["jobs_per_worker"],
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(
            f"{per_day:g} generations a day at {clip_seconds:.2f} s per clip ({source}):\n"
            f"  busy on average   {plan.busy:.2f} worker slots\n"
            f"  busy at the peak  {plan.peak:.2f} (x{options['peak_factor']:g})\n"
            f"  provision         {plan.workers} workers "
            f"(mean utilisation {plan.utilisation:.0%}, "
            f"at most {options['target_utilisation']:.0%} at the peak)"
        )

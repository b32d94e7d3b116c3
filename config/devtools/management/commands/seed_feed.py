"""`manage.py seed_feed`: synthetic users, follows, posts, likes and feed events for benchmarks
(config.devtools.seeding)."""

from __future__ import annotations

import time

from django.core.management.base import BaseCommand, CommandError

from config.devtools.seeding import SeedSpec, seed, seed_delete, seeded_user_count


class Command(BaseCommand):
    help = (
        "Seed skewed feed data with COPY (users named seed_<n>). Refuses when seeded data "
        "exists unless --reset, which deletes only seeded users and what they own."
    )

    def add_arguments(self, parser):
        parser.add_argument("--users", type=int, default=100_000)
        parser.add_argument("--posts", type=int, default=1_000_000)
        parser.add_argument("--events", type=int, default=10_000_000)
        parser.add_argument("--follows-per-user", type=int, default=50)
        parser.add_argument("--likes", type=int, default=None, help="default: 2 per post")
        parser.add_argument("--days", type=int, default=45, help="posts span the last N days")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--reset", action="store_true", help="delete seeded data first")
        parser.add_argument(
            "--if-missing", action="store_true", help="do nothing (exit 0) when already seeded"
        )

    def handle(self, *args, **opts):
        quiet = opts["verbosity"] == 0
        existing = seeded_user_count()
        if existing and opts["if_missing"] and not opts["reset"]:
            self.stdout.write(f"{existing} seeded users exist; nothing to do")
            return
        if existing:
            if not opts["reset"]:
                raise CommandError(
                    f"{existing} seeded users exist; pass --reset to delete them and reseed"
                )
            started = time.monotonic()
            seed_delete(quiet=quiet)
            self.stdout.write(
                f"deleted {existing} seeded users in {time.monotonic() - started:.1f}s"
            )
        spec = SeedSpec(
            users=opts["users"],
            posts=opts["posts"],
            events=opts["events"],
            follows_per_user=opts["follows_per_user"],
            likes=opts["likes"],
            days=opts["days"],
            seed=opts["seed"],
        )
        started = time.monotonic()
        report = seed(spec, quiet=quiet)
        wall = time.monotonic() - started
        for table, rows in report.rows.items():
            secs = report.seconds[table]
            self.stdout.write(
                f"{table:<24}{rows:>12,} rows {secs:8.1f}s {rows / max(secs, 1e-9):>10,.0f} rows/s"
            )
        self.stdout.write(f"{'analyze':<24}{'':>12}      {report.seconds['analyze']:8.1f}s")
        self.stdout.write(
            self.style.SUCCESS(
                f"seeded {report.total_rows:,} rows in {wall:.1f}s "
                f"({report.total_rows / max(wall, 1e-9):,.0f} rows/s overall)"
            )
        )

"""`manage.py ledger_check`: re-derives every balance from the transfers; exit 1 on any
difference (docs/rights.md "Checking the ledger")."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from rights.checks import ledger_problems


class Command(BaseCommand):
    help = "Re-derive every ledger balance from the transfers; fail on any difference."

    def handle(self, *args, **options):
        problems = ledger_problems()
        for problem in problems:
            self.stderr.write(problem)
        if problems:
            raise CommandError(f"ledger_check: {len(problems)} problem(s)")
        self.stdout.write("ledger_check: every balance matches its transfers; debits = credits")

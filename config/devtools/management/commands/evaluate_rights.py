"""`manage.py evaluate_rights`: precision/recall of the semantic IP check on the labelled set
(threshold chosen on dev, figures on the held-out test half), its controls, and the alias
matcher's speed (config.devtools.bench.rights_semantic). Needs no database; progress goes to
stderr, the tables to stdout, the JSON to `--out`.

manage.py evaluate_rights                                  # docs/rights-semantic.json
manage.py evaluate_rights --set my_set.json --out /tmp/r.json --no-matcher
"""

from __future__ import annotations

import json
from pathlib import Path

from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Evaluate IP detection (semantic check precision/recall, alias matcher speed)."
    requires_system_checks: list = []  # no database, no models: nothing to check

    def add_arguments(self, parser):
        from config.devtools.bench.rights_semantic import SET_PATH

        parser.add_argument("--out", default="docs/rights-semantic.json")
        parser.add_argument("--set", default=str(SET_PATH), help="the labelled set (JSON)")
        parser.add_argument(
            "--no-matcher", action="store_true", help="skip the alias matcher benchmark"
        )

    def handle(self, *args, **opts):
        from config.devtools.bench.rights_semantic import evaluate, format_report

        report = evaluate(
            opts["set"],
            log=lambda m: self.stderr.write(str(m)),
            matcher=not opts["no_matcher"],
        )
        out = Path(opts["out"])
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2) + "\n")
        self.stdout.write(format_report(report))
        self.stderr.write(f"written {out}")

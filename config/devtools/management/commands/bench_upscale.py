"""`manage.py bench_upscale`: the filters generation.upscale chooses between, scored against
the same scenes rendered at full size, plus photographs (config.devtools.bench.upscale).

    python manage.py bench_upscale                       # 20 clips from seed 200000
    python manage.py bench_upscale --clips 40 --start 900000 --out /tmp/upscaling.json
"""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = (
        "Score nearest, bilinear, bicubic, lanczos, contour and a wrong-output control against "
        "riff-world scenes rendered at 512 px and on photographs; writes JSON and a picture."
    )

    def add_arguments(self, parser):
        parser.add_argument("--clips", type=int, default=20, help="riff-world clips to score")
        parser.add_argument(
            "--start",
            type=int,
            default=200_000,
            help="first clip seed (pick a range never scored before to re-check the result)",
        )
        parser.add_argument("--out", default="docs/upscaling.json")
        parser.add_argument("--picture", default="docs/img/upscaling.png")

    def handle(self, *args, **opts):
        from config.devtools.bench.upscale import bench_upscale

        bench_upscale(
            clips=opts["clips"],
            start=opts["start"],
            out=Path(opts["out"]),
            picture=Path(opts["picture"]),
            progress=opts["verbosity"] > 0,
            log=self.stdout.write,
        )

from django.core.management.base import BaseCommand

from accounts.services import invite_mint


class Command(BaseCommand):
    help = "Mint bootstrap invite codes (not counted against any user's allowance)."

    def add_arguments(self, parser):
        parser.add_argument("count", type=int, nargs="?", default=1)

    def handle(self, *args, count: int, **options):
        for _ in range(count):
            self.stdout.write(invite_mint(created_by=None).code)

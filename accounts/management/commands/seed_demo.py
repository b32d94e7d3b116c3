"""Demo data for `make run`: a few users who follow each other, each with invites. Idempotent."""

from datetime import date

from django.core.management.base import BaseCommand
from django.db import transaction

from accounts.models import Follow, Invite, User
from accounts.services import new_invite_code

DEMO_PASSWORD = "riff-demo-pass"  # noqa: S105 - demo data, printed on start
DEMO_USERS = [
    ("alice", "Alice", date(1994, 5, 1), True),
    ("bob", "Bob", date(1991, 2, 11), False),
    ("carol", "Carol", date(1999, 9, 23), False),
    ("dan", "Dan (teen)", date(2010, 3, 3), False),
]
DEMO_FOLLOWS = [("alice", "bob"), ("bob", "alice"), ("carol", "alice"), ("dan", "carol")]


class Command(BaseCommand):
    help = f"Create demo users (password: {DEMO_PASSWORD}), follows and invites; idempotent."

    @transaction.atomic
    def handle(self, *args, **options):
        users = {}
        for username, display, birth, staff in DEMO_USERS:
            user = User.objects.filter(username=username).first()
            if user is None:
                user = User.objects.create_user(
                    username,
                    f"{username}@demo.riff.local",
                    DEMO_PASSWORD,
                    display_name=display,
                    birth_date=birth,
                    is_staff=staff,
                    is_superuser=staff,
                )
            users[username] = user
        for a, b in DEMO_FOLLOWS:
            Follow.objects.get_or_create(follower=users[a], followee=users[b])
        for user in users.values():
            for _ in range(2 - Invite.objects.filter(created_by=user).count()):
                Invite.objects.create(code=new_invite_code(), created_by=user)
        # Keep a few unused bootstrap codes around so a newcomer can always sign up.
        spare = Invite.objects.filter(created_by__isnull=True, used_by__isnull=True).count()
        for _ in range(max(0, 3 - spare)):
            Invite.objects.create(code=new_invite_code(), created_by=None)
        self.stdout.write(self.style.SUCCESS("demo users: " + ", ".join(users)))
        self.stdout.write(f"demo password: {DEMO_PASSWORD}")
        unused = Invite.objects.filter(used_by__isnull=True, created_by__isnull=True).values_list(
            "code", flat=True
        )[:3]
        self.stdout.write("bootstrap invites: " + ", ".join(unused))

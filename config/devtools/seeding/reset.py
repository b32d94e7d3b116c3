"""Finding and deleting seeded data (users named `seed_<n>` and everything they own)."""

from __future__ import annotations

from django.db import connection, transaction
from tqdm import tqdm

from accounts.models import User

from .shapes import SEED_PREFIX


def seeded_user_count() -> int:
    return User.objects.filter(username__startswith=SEED_PREFIX).count()


def seed_delete(*, quiet: bool = False) -> int:
    """Deletes every seeded user and what they own (and anything else that points at them);
    returns the number of users deleted. The big tables go first in set-based SQL, the rest
    through the ORM's cascade so no relation is forgotten."""
    seeded = "SELECT id FROM accounts_user WHERE username LIKE 'seed\\_%%'"
    posts = f"SELECT id FROM feed_post WHERE author_id IN ({seeded})"  # noqa: S608
    statements = [
        f"DELETE FROM feed_feedevent WHERE user_id IN ({seeded}) OR post_id IN ({posts})",  # noqa: S608
        f"DELETE FROM feed_postcounter WHERE post_id IN ({posts})",  # noqa: S608
        f"DELETE FROM feed_comment WHERE post_id IN ({posts})",  # noqa: S608
        f"DELETE FROM feed_like WHERE user_id IN ({seeded}) OR post_id IN ({posts})",  # noqa: S608
        f"UPDATE feed_post SET remix_of_id = NULL WHERE remix_of_id IN ({posts})",  # noqa: S608
        f"DELETE FROM feed_post WHERE author_id IN ({seeded})",  # noqa: S608
        f"DELETE FROM generation_video WHERE owner_id IN ({seeded})",  # noqa: S608
        f"DELETE FROM generation_generation WHERE owner_id IN ({seeded})",  # noqa: S608
        f"DELETE FROM accounts_follow WHERE follower_id IN ({seeded}) "  # noqa: S608
        f"OR followee_id IN ({seeded})",
    ]
    count = seeded_user_count()
    # One transaction: a row elsewhere that still points at a seeded post fails the commit
    # (deferred foreign keys) and nothing is half-deleted.
    with transaction.atomic():
        with connection.cursor() as cur:
            for sql in tqdm(statements, desc="reset", disable=quiet):
                cur.execute(sql)
        User.objects.filter(username__startswith=SEED_PREFIX).delete()
    return count

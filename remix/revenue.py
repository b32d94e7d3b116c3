"""remix's implementation of the `revenue.contributors` hook (rights.hooks): the ancestors of
a post, parent first, for the decaying ancestor share of rights.split."""

from __future__ import annotations

from django.conf import settings
from django.db import connection

from rights.split import Contributor, Party

# Like remix.selectors.LINEAGE_SQL, with the author and whether the ancestor may be paid. The
# walk reads a few rows more than the cap so skipped ancestors don't shorten the paid chain.
ANCESTORS_SQL = """
WITH RECURSIVE chain(id, remix_of_id, n) AS (
    SELECT id, remix_of_id, 0 FROM feed_post WHERE id = %(start)s
  UNION ALL
    SELECT p.id, p.remix_of_id, c.n + 1
    FROM chain c JOIN feed_post p ON p.id = c.remix_of_id
    WHERE c.n < %(stop)s
)
SELECT c.n, p.author_id, (p.state = 'live' AND u.is_active) AS payable
FROM chain c JOIN feed_post p ON p.id = c.id JOIN accounts_user u ON u.id = p.author_id
WHERE c.n > 0 ORDER BY c.n
"""
# How many removed/deleted-author ancestors may be skipped on the way up.
SKIP_MAX = 10


def ancestor_contributors(*, post_id) -> list[Contributor]:
    """Ancestors as `ancestor` contributors, depth 1 = the nearest payable one.

    An ancestor whose post was taken down or whose author's account is inactive is skipped and
    the next one up takes its place: revenue follows the people still making things. The chain
    is cut at RIFF_REVENUE_ANCESTOR_MAX_DEPTH payable ancestors."""
    cap = settings.RIFF_REVENUE_ANCESTOR_MAX_DEPTH
    if cap <= 0:
        return []
    with connection.cursor() as cursor:
        cursor.execute(ANCESTORS_SQL, {"start": post_id, "stop": cap + SKIP_MAX})
        rows = cursor.fetchall()
    found: list[Contributor] = []
    for _, author_id, payable in rows:
        if payable:
            found.append(
                Contributor(
                    role="ancestor", party=Party("user", str(author_id)), depth=len(found) + 1
                )
            )
            if len(found) == cap:
                break
    return found

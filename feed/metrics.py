"""Creation metrics, computed from recorded rows (never sampled or estimated).

Definitions (also in docs/feed.md), over a window `[start, end)`:

* **Day-one creation**: of the users who joined in the window at least 24 h before `end`
  (so everyone counted had a whole first day), the share who started a Generation within
  24 h of joining.
* **Returning sessions with a creation**: a session is a run of one user's activity (feed
  events and Generations) with no gap longer than `RIFF_FEED_METRICS_SESSION_GAP` (30 min).
  A returning session is any session but the user's first ever. The share is returning
  sessions that started in the window and contain a Generation, over all returning sessions
  that started in the window.
* **Users who post**: of the users active in the window (a feed event, a Generation or a
  post), the share who published a post in it.
* **Inspired creations per 1,000 impressions**, by the reason of the serve_id: impressions are
  distinct serve_ids of `impression` feed events in the window; inspired creations are
  Generations in the window carrying a serve_id with that reason. Reasons `card-<type>` are
  reported by card type, the others by source.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection
from django.db.models import Exists, OuterRef, Q

from accounts.models import User
from generation.models import Generation

from .models import EventKind, FeedEvent, Post
from .serving import SERVE_ID_RE

# The reason part of a well-formed serve_id, in SQL (the same shape as serving.SERVE_ID_RE).
_PATTERN = SERVE_ID_RE.pattern
_REASON_SQL = "split_part(serve_id, '.', 1)"


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 6) if whole else None


def day_one_creation(start: datetime, end: datetime) -> dict:
    cohort = User.objects.filter(created_at__gte=start, created_at__lt=end - timedelta(days=1))
    first_day = Generation.objects.filter(
        owner_id=OuterRef("pk"),
        created_at__gte=OuterRef("created_at"),
        created_at__lt=OuterRef("created_at") + timedelta(days=1),
    )
    total = cohort.count()
    created = cohort.filter(Exists(first_day)).count()
    return {"users": total, "created": created, "share": _share(created, total)}


def returning_sessions(start: datetime, end: datetime) -> dict:
    gap = timedelta(seconds=settings.RIFF_FEED_METRICS_SESSION_GAP)
    sql = f"""
        WITH activity AS (
            SELECT user_id, created_at, 0 AS created FROM {FeedEvent._meta.db_table}
            WHERE created_at < %(end)s
            UNION ALL
            SELECT owner_id, created_at, 1 FROM {Generation._meta.db_table}
            WHERE created_at < %(end)s
        ), marked AS (
            SELECT user_id, created_at, created,
                   CASE WHEN created_at - lag(created_at) OVER w <= %(gap)s THEN 0 ELSE 1 END
                       AS starts
            FROM activity WINDOW w AS (PARTITION BY user_id ORDER BY created_at, created)
        ), numbered AS (
            SELECT user_id, created_at, created,
                   sum(starts) OVER (PARTITION BY user_id ORDER BY created_at, created
                                     ROWS UNBOUNDED PRECEDING) AS session_no
            FROM marked
        ), sessions AS (
            SELECT user_id, session_no, min(created_at) AS started, max(created) AS creation
            FROM numbered GROUP BY user_id, session_no
        )
        SELECT count(*), count(*) FILTER (WHERE creation = 1) FROM sessions
        WHERE session_no > 1 AND started >= %(start)s AND started < %(end)s
    """  # noqa: S608 - table names from the models, values are parameters
    with connection.cursor() as cursor:
        cursor.execute(sql, {"start": start, "end": end, "gap": gap})
        total, with_creation = cursor.fetchone()
    return {
        "sessions": total,
        "with_creation": with_creation,
        "share": _share(with_creation, total),
    }


def posting_users(start: datetime, end: datetime) -> dict:
    window = {"created_at__gte": start, "created_at__lt": end}
    posts = Post.objects.filter(**window).values("author_id")
    posted = posts.distinct().count()
    # UNION (not ALL) dedupes: one row per active user.
    active = (
        FeedEvent.objects.filter(**window)
        .values("user_id")
        .union(Generation.objects.filter(**window).values("owner_id"), posts)
        .count()
    )
    return {"users": active, "posted": posted, "share": _share(posted, active)}


def inspired_creations(start: datetime, end: datetime) -> dict:
    window = Q(created_at__gte=start, created_at__lt=end, serve_id__regex=_PATTERN)
    impressions = _by_reason(
        FeedEvent.objects.filter(window, kind=EventKind.IMPRESSION), "count(DISTINCT serve_id)"
    )
    creations = _by_reason(Generation.objects.filter(window), "count(*)")
    out: dict = {"by_source": [], "by_card_type": []}
    for reason in sorted(set(impressions) | set(creations)):
        shown, made = impressions.get(reason, 0), creations.get(reason, 0)
        row = {
            "impressions": shown,
            "creations": made,
            "per_1000": round(made * 1000 / shown, 3) if shown else None,
        }
        if reason.startswith("card-"):
            out["by_card_type"].append({"card_type": reason[5:], **row})
        else:
            out["by_source"].append({"reason": reason, **row})
    return out


def _by_reason(qs, aggregate: str) -> dict:
    sql, params = qs.values("serve_id").query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {_REASON_SQL} AS reason, {aggregate} FROM ({sql}) AS s GROUP BY 1",  # noqa: S608
            params,
        )
        return dict(cursor.fetchall())


def creation_metrics(*, start: datetime, end: datetime) -> dict:
    return {
        "start": start,
        "end": end,
        "day_one_creation": day_one_creation(start, end),
        "returning_sessions": returning_sessions(start, end),
        "posting_users": posting_users(start, end),
        "inspired": inspired_creations(start, end),
    }

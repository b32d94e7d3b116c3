"""The numbers on the console dashboard, each read straight from the rows (never sampled).

- queue sizes: tickets not closed, per queue and status (the queue view's own rule: a ticket
  made only of muted reports does not count);
- handling time: median of `closed_at - opened_at` of the tickets closed in the last 7 days,
  overall and per day (PostgreSQL's `percentile_cont`);
- actions per day: moderation events by day and type, last 7 days;
- generations and failures per hour: `generation.Generation` rows by the hour they were
  created, last 24 h, with how many of them failed;
- creation metrics: `feed.metrics.creation_metrics`, the same function behind
  `GET /api/v1/metrics/creation` and the admin's creation-metrics page.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db import connection
from django.db.models import Count, Q
from django.db.models.functions import TruncDate, TruncHour
from django.utils import timezone

from feed.metrics import creation_metrics
from generation.models import Generation, GenerationStatus

from ..models import EventType, ModerationEvent, Ticket, TicketStatus
from ..selectors import QUEUE_NAMES
from .charts import Series, columns

OPEN_STATUSES = (TicketStatus.OPEN, TicketStatus.ASSIGNED, TicketStatus.ESCALATED)
DAYS = 7


def queue_sizes() -> dict:
    rows = (
        Ticket.objects.filter(reporter_count__gt=0)
        .exclude(status=TicketStatus.CLOSED)
        .values_list("work_queue", "status")
        .annotate(n=Count("id"))
    )
    counts = {(q, s): n for q, s, n in rows}
    queues = sorted(set(QUEUE_NAMES) | {q for q, _ in counts})
    table = [
        {
            "queue": q,
            "counts": [counts.get((q, s), 0) for s in OPEN_STATUSES],
            "total": sum(counts.get((q, s), 0) for s in OPEN_STATUSES),
        }
        for q in queues
    ]
    chart = columns(
        "Open tickets per queue",
        queues,
        [Series(s.label, [counts.get((q, s), 0) for q in queues]) for s in OPEN_STATUSES],
        column_width=60,
        gap=16,
        empty="No open tickets.",
    )
    return {
        "statuses": [s.label for s in OPEN_STATUSES],
        "rows": table,
        "total": sum(row["total"] for row in table),
        "chart": chart,
    }


def _days(now: datetime) -> list:
    today = timezone.localdate(now)
    return [today - timedelta(days=n) for n in range(DAYS - 1, -1, -1)]


HANDLING_SQL = """
SELECT {group} percentile_cont(0.5) WITHIN GROUP (
           ORDER BY EXTRACT(EPOCH FROM closed_at - opened_at)),
       count(*)
FROM {table}
WHERE closed_at >= %s AND closed_at IS NOT NULL
{group_by}
"""


def handling_time(now: datetime) -> dict:
    since = timezone.make_aware(
        datetime.combine(_days(now)[0], datetime.min.time()), timezone.get_current_timezone()
    )
    table = Ticket._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(HANDLING_SQL.format(group="", group_by="", table=table), [since])
        median, closed = cursor.fetchone()
        cursor.execute(
            HANDLING_SQL.format(
                group="(closed_at AT TIME ZONE %s)::date,", group_by="GROUP BY 1", table=table
            ),
            [timezone.get_current_timezone_name(), since],
        )
        per_day = {day: (m, n) for day, m, n in cursor.fetchall()}
    days = _days(now)
    seconds = [per_day[d][0] if d in per_day else None for d in days]
    # One unit for the whole chart, the largest that keeps the numbers readable.
    top = max([v for v in seconds if v is not None] + [0])
    name, size = ("days", 86400) if top >= 3 * 86400 else ("hours", 3600)
    if top < 3 * 3600:
        name, size = ("minutes", 60) if top >= 180 else ("seconds", 1)
    chart = columns(
        f"Median handling time per day ({name}, opened → closed)",
        [d.strftime("%a %d") for d in days],
        [Series(f"median {name}", [None if v is None else round(v / size, 1) for v in seconds])],
        column_width=44,
        empty="No ticket was closed in the last 7 days.",
    )
    return {
        "median_seconds": median,
        "median_human": _duration(median),
        "closed": closed,
        "chart": chart,
    }


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "n/a"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def actions_per_day(now: datetime) -> dict:
    days = _days(now)
    rows = (
        ModerationEvent.objects.filter(created_at__date__gte=days[0])
        .annotate(day=TruncDate("created_at"))
        .values_list("day", "type")
        .annotate(n=Count("id"))
    )
    counts = {(day, kind): n for day, kind, n in rows}
    kinds = [k for k in EventType.values if any(kind == k for _, kind in counts)]
    chart = columns(
        "Moderation actions per day, by type",
        [d.strftime("%a %d") for d in days],
        [Series(k, [counts.get((d, k), 0) for d in days]) for k in kinds],
        column_width=44,
        empty="No moderation action in the last 7 days.",
    )
    return {"chart": chart, "total": sum(counts.values())}


def generations_per_hour(now: datetime) -> dict:
    start = (now - timedelta(hours=23)).replace(minute=0, second=0, microsecond=0)
    rows = (
        Generation.objects.filter(created_at__gte=start)
        .annotate(hour=TruncHour("created_at"))
        .values_list("hour")
        .annotate(total=Count("id"), failed=Count("id", filter=Q(status=GenerationStatus.FAILED)))
    )
    by_hour = {hour: (total, failed) for hour, total, failed in rows}
    hours = [start + timedelta(hours=n) for n in range(24)]
    failed = [by_hour.get(h, (0, 0))[1] for h in hours]
    ok = [by_hour.get(h, (0, 0))[0] - f for h, f in zip(hours, failed, strict=True)]
    chart = columns(
        "Generations per hour, last 24 h",
        [timezone.localtime(h).strftime("%H") for h in hours],
        [Series("succeeded or in progress", ok, "#0072B2"), Series("failed", failed, "#D55E00")],
        column_width=18,
        gap=6,
        label_every=3,
        empty="No generation in the last 24 hours.",
    )
    total = sum(ok) + sum(failed)
    return {
        "chart": chart,
        "total": total,
        "failed": sum(failed),
        "failure_rate": None if not total else sum(failed) / total,
    }


def creation(now: datetime, days: int) -> dict:
    data = creation_metrics(start=now - timedelta(days=days), end=now)

    def pct(block):
        return None if block["share"] is None else round(block["share"] * 100, 1)

    d1, ret, post = data["day_one_creation"], data["returning_sessions"], data["posting_users"]
    shares = [
        ("day-one creation", pct(d1), f"{d1['created']} of {d1['users']} new users"),
        (
            "returning sessions that create",
            pct(ret),
            f"{ret['with_creation']} of {ret['sessions']} sessions",
        ),
        ("users who post", pct(post), f"{post['posted']} of {post['users']} active users"),
    ]
    chart = columns(
        f"Creation shares, last {days} days (%)",
        ["day one", "returning", "post"],
        [Series("share", [s[1] for s in shares])],
        unit="%",
        column_width=60,
        gap=30,
        empty="No activity in the window.",
    )
    return {
        "days": days,
        "shares": shares,
        "chart": chart,
        "by_source": data["inspired"]["by_source"],
        "by_card_type": data["inspired"]["by_card_type"],
    }


def dashboard(*, days: int = 30, now: datetime | None = None) -> dict:
    now = now or timezone.now()
    return {
        "now": now,
        "queues": queue_sizes(),
        "handling": handling_time(now),
        "actions": actions_per_day(now),
        "generations": generations_per_hour(now),
        "creation": creation(now, days),
    }

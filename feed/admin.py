"""Posts and comments in the admin, and the creation-metrics dashboard.

The dashboard is a custom admin view (`admin:feed_creation_metrics`, /admin/feed/post/creation-
metrics/) rendered server-side as an SVG bar chart (no JavaScript; a three-line template). It
is listed on the admin index under Feed as "Creation metrics" (the app list is extended below,
since a link needs no model of its own).
"""

from __future__ import annotations

from datetime import timedelta

from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from config.core.admin import ViewOnly

from .metrics import creation_metrics
from .models import Comment, Post

BAR_W, GAP, HEIGHT, PAD = 56, 24, 180, 28


@admin.register(Post)
class PostAdmin(ViewOnly, admin.ModelAdmin):
    list_display = ("id", "author", "state", "allow_remix", "depth", "created_at")
    list_filter = ("state", "allow_remix")
    search_fields = ("id", "author__username", "caption")
    raw_id_fields = ("author", "video", "remix_of")
    # Read-only: state and lineage change only through services (publishing, deletion,
    # moderation's takedowns with their audit trail); the admin shows them.
    exclude = ("embedding",)
    ordering = ("-created_at",)

    def get_urls(self):
        view = self.admin_site.admin_view(creation_metrics_view)
        return [
            path("creation-metrics/", view, name="feed_creation_metrics"),
            *super().get_urls(),
        ]


@admin.register(Comment)
class CommentAdmin(ViewOnly, admin.ModelAdmin):
    list_display = ("id", "author", "post", "body", "created_at")
    search_fields = ("id", "author__username", "body")
    raw_id_fields = ("author", "post")
    ordering = ("-created_at",)


def _bar_chart(title: str, bars: list[tuple[str, float | None, str]], *, unit: str) -> str:
    """One SVG bar chart; `bars` are (label, value or None, caption under the value)."""
    top = max([v for _, v, _ in bars if v] + [1e-9])
    width = PAD * 2 + len(bars) * (BAR_W + GAP)
    rects = []
    for i, (label, value, caption) in enumerate(bars):
        x = PAD + i * (BAR_W + GAP)
        h = 0 if not value else round(HEIGHT * value / top)
        y = PAD + HEIGHT - h
        shown = "n/a" if value is None else f"{value:.3g}{unit}"
        rects.append(
            format_html(
                '<rect x="{}" y="{}" width="{}" height="{}" fill="#417690"></rect>'
                '<text x="{}" y="{}" text-anchor="middle" font-size="11">{}</text>'
                '<text x="{}" y="{}" text-anchor="middle" font-size="11">{}</text>'
                '<text x="{}" y="{}" text-anchor="middle" font-size="10" fill="#666">{}</text>',
                x, y, BAR_W, h,
                x + BAR_W / 2, y - 4, shown,
                x + BAR_W / 2, PAD + HEIGHT + 14, label,
                x + BAR_W / 2, PAD + HEIGHT + 27, caption,
            )
        )  # fmt: skip
    return format_html(
        '<h2>{}</h2><svg xmlns="http://www.w3.org/2000/svg" width="{}" height="{}" role="img" '
        'aria-label="{}">{}</svg>',
        title,
        width,
        HEIGHT + PAD * 2 + 20,
        title,
        mark_safe("".join(rects)),  # noqa: S308 - every piece went through format_html
    )


def creation_metrics_view(request: HttpRequest) -> HttpResponse:
    try:
        days = min(max(int(request.GET.get("days", 30)), 1), 365)
    except ValueError:
        days = 30
    end = timezone.now()
    data = creation_metrics(start=end - timedelta(days=days), end=end)
    d1, ret, post = data["day_one_creation"], data["returning_sessions"], data["posting_users"]

    def pct(block):
        return None if block["share"] is None else block["share"] * 100

    shares = _bar_chart(
        "Creation shares",
        [
            ("day one", pct(d1), f"{d1['created']}/{d1['users']} users"),
            ("returning", pct(ret), f"{ret['with_creation']}/{ret['sessions']} sessions"),
            ("post", pct(post), f"{post['posted']}/{post['users']} users"),
        ],
        unit="%",
    )
    sources = _bar_chart(
        "Inspired creations per 1,000 impressions, by source",
        [
            (r["reason"], r["per_1000"], f"{r['creations']}/{r['impressions']}")
            for r in data["inspired"]["by_source"]
        ],
        unit="",
    )
    cards = _bar_chart(
        "Inspired creations per 1,000 impressions, by card type",
        [
            (r["card_type"], r["per_1000"], f"{r['creations']}/{r['impressions']}")
            for r in data["inspired"]["by_card_type"]
        ],
        unit="",
    )
    windows = format_html_join(
        " · ", '<a href="?days={}">{} days</a>', ((n, n) for n in (1, 7, 30, 90))
    )
    body = format_html(
        "<p>Window: last {} days ({} to {}). {}</p>{}{}{}"
        "<p>Definitions: docs/feed.md, “Creation metrics”. JSON: /api/v1/metrics/creation.</p>",
        days,
        data["start"].strftime("%Y-%m-%d %H:%M"),
        data["end"].strftime("%Y-%m-%d %H:%M"),
        windows,
        shares,
        sources,
        cards,
    )
    context = {
        **admin.site.each_context(request),
        "title": "Creation metrics",
        "content": body,
    }
    return TemplateResponse(request, "admin/feed/creation_metrics.html", context)


_app_list = admin.site.get_app_list


def _app_list_with_metrics(request, app_label=None):
    """The admin index's app list, with the dashboard listed under Feed for staff."""
    apps = _app_list(request, app_label)
    for app in apps:
        if app["app_label"] == "feed":
            app["models"].append(
                {
                    "name": "Creation metrics",
                    "object_name": "CreationMetrics",
                    "perms": {"view": True},
                    "admin_url": reverse("admin:feed_creation_metrics"),
                    "add_url": None,
                    "view_only": True,
                }
            )
    return apps


admin.site.get_app_list = _app_list_with_metrics

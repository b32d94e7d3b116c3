"""Moderation records in the Django admin, read-only: the audit trail is written by
`moderation.services` alone (events are insert-only in the database too), and the work is done
in the console (/console/, docs/moderation-console.md). The admin is for looking things up."""

from __future__ import annotations

from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html

from .models import Appeal, ModerationEvent, Report, SubjectStatus, Ticket


class ReadOnlyAdmin(admin.ModelAdmin):
    """View only: no add, change or delete for anyone, superusers included."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class ReportInline(admin.TabularInline):
    model = Report
    extra = 0
    fields = ("reporter", "reason", "details", "muted", "created_at")
    readonly_fields = fields
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Ticket)
class TicketAdmin(ReadOnlyAdmin):
    list_display = (
        "subject_type",
        "subject_id",
        "work_queue",
        "reason",
        "status",
        "outcome",
        "priority",
        "reporter_count",
        "likeness_self",
        "assignee",
        "opened_at",
        "console",
    )
    list_filter = ("status", "work_queue", "reason", "subject_type", "likeness_self", "outcome")
    search_fields = ("=subject_id", "assignee__username")
    list_select_related = ("assignee",)
    ordering = ("-opened_at",)
    date_hierarchy = "opened_at"
    inlines = [ReportInline]

    @admin.display(description="console")
    def console(self, obj):
        return format_html('<a href="{}">open</a>', reverse("console:report", args=[obj.pk]))


@admin.register(Report)
class ReportAdmin(ReadOnlyAdmin):
    list_display = (
        "subject_type",
        "subject_id",
        "reason",
        "reporter",
        "muted",
        "ticket",
        "created_at",
    )
    list_filter = ("reason", "subject_type", "muted")
    search_fields = ("=subject_id", "reporter__username", "details")
    list_select_related = ("reporter", "ticket")
    ordering = ("-created_at",)
    date_hierarchy = "created_at"


@admin.register(ModerationEvent)
class ModerationEventAdmin(ReadOnlyAdmin):
    list_display = (
        "created_at",
        "type",
        "subject_type",
        "subject_id",
        "actor_name",
        "reason",
        "duration_hours",
        "label",
        "approved",
    )
    list_filter = ("type", "subject_type", "approved")
    search_fields = ("=subject_id", "actor_name", "reason", "=external_id", "=public_id")
    ordering = ("-id",)
    date_hierarchy = "created_at"


@admin.register(SubjectStatus)
class SubjectStatusAdmin(ReadOnlyAdmin):
    list_display = (
        "subject_type",
        "subject_id",
        "taken_down",
        "takedown_until",
        "labels",
        "escalated",
        "banned",
        "suspended_until",
        "muted",
        "cameo_revoked",
        "event_count",
        "updated_at",
    )
    list_filter = ("subject_type", "taken_down", "escalated", "banned", "muted", "cameo_revoked")
    search_fields = ("=subject_id",)
    ordering = ("-updated_at",)


@admin.register(Appeal)
class AppealAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "appellant", "event", "status", "decided_by", "decided_at")
    list_filter = ("status",)
    search_fields = ("appellant__username", "text")
    list_select_related = ("appellant", "event", "decided_by")
    ordering = ("-created_at",)


# The safety rules' admin (prompt blocklist, protected figures, frame hashes).
from . import safety_admin  # noqa: E402, F401

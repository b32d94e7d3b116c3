"""Cameo moderation: the review queue for `needs_review` cameos, decided through the same
transition service as everything else, each decision written to the cameo's audit trail."""

from django.contrib import admin, messages
from django.core.files.storage import default_storage
from django.http import Http404
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from config.core.errors import ApiError
from config.core.files import FileStream

from .models import (
    AccessRequest,
    Cameo,
    CameoEvent,
    CameoGrant,
    CameoInstructions,
    CameoReview,
    CameoStatus,
)
from .services import cameo_transition


class CameoEventInline(admin.TabularInline):
    model = CameoEvent
    extra = 0
    can_delete = False
    readonly_fields = ("created_at", "from_status", "to_status", "actor", "reason")

    def has_add_permission(self, request, obj=None):
        return False


def _decide(modeladmin, request, queryset, to: str, reason: str):
    done = 0
    for cameo in queryset:
        try:
            cameo_transition(cameo=cameo, to=to, actor=request.user, reason=reason)
            done += 1
        except ApiError as exc:
            modeladmin.message_user(request, f"@{cameo.handle}: {exc.detail}", messages.WARNING)
    modeladmin.message_user(request, f"{done} cameo(s) now {to}.")


@admin.action(description="Approve (make active)")
def approve(modeladmin, request, queryset):
    _decide(modeladmin, request, queryset, CameoStatus.ACTIVE, "approved by moderator")


@admin.action(description="Reject")
def reject(modeladmin, request, queryset):
    _decide(modeladmin, request, queryset, CameoStatus.REJECTED, "rejected by moderator")


@admin.register(Cameo)
class CameoAdmin(admin.ModelAdmin):
    list_display = ("handle", "kind", "owner", "status", "audience", "created_at")
    list_filter = ("status", "kind", "audience")
    search_fields = ("handle", "display_name", "owner__username")
    raw_id_fields = ("owner",)
    # Review decisions only: revoking a cameo is a moderation action (the console's
    # revoke_cameo), recorded as an event the owner can see and appeal.
    actions = [approve, reject]
    inlines = [CameoEventInline]
    readonly_fields = (
        "owner",
        "kind",
        "handle",
        "audience",
        "monetization_enabled",
        "status",
        "status_reason",
        "handle_key",
        "challenge",
        "recording",
        "recording_info",
        "verification",
        "reference_preview",
        "instructions_version",
        "created_at",
    )
    exclude = ("reference_frames",)

    @admin.display(description="reference frames")
    def reference_preview(self, obj):
        return format_html_join(
            "",
            '<img src="{}" width="96" height="96" style="margin-right:4px">',
            (
                (reverse("admin:cameos_cameo_reference", args=[obj.pk, index]),)
                for index in range(len(obj.reference_frames))
            ),
        ) or format_html("<em>none yet</em>")

    def get_urls(self):
        # Likeness files are never served as public media: staff see reference frames through
        # this view, behind the admin's own login and permission check.
        view = self.admin_site.admin_view(self.reference_frame)
        return [
            path("<uuid:cameo_id>/reference/<int:index>/", view, name="cameos_cameo_reference"),
            *super().get_urls(),
        ]

    def reference_frame(self, request, cameo_id, index: int):
        cameo = Cameo.objects.filter(pk=cameo_id).first()
        if cameo is None or not self.has_view_permission(request, cameo):
            raise Http404
        if index >= len(cameo.reference_frames):
            raise Http404
        name = cameo.reference_frames[index]
        if not default_storage.exists(name):
            raise Http404
        response = FileStream(default_storage.open(name, "rb"), content_type="image/png")
        response["Cache-Control"] = "private, no-store"
        return response


@admin.register(CameoReview)
class CameoReviewAdmin(CameoAdmin):
    actions = [approve, reject]

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .filter(status=CameoStatus.NEEDS_REVIEW)
            .order_by("created_at")
        )


@admin.register(AccessRequest)
class AccessRequestAdmin(admin.ModelAdmin):
    """Read-only: requests move through cameos.services (the owner decides)."""

    list_display = ("cameo", "requester", "status", "created_at", "decided_at")
    list_filter = ("status",)
    raw_id_fields = ("cameo", "requester")

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]


admin.site.register(CameoGrant)
admin.site.register(CameoInstructions)

from django.contrib import admin, messages

from config.core.errors import ApiError

from .models import Appearance, Generation, GenerationCameo, Video
from .services import generation_cancel

# The safety rules' admin (prompt blocklist, protected figures, blocked frame hashes) lives
# with the rules in moderation (moderation.safety_admin).


class GenerationCameoInline(admin.TabularInline):
    model = GenerationCameo
    extra = 0
    raw_id_fields = ("cameo",)
    readonly_fields = ("cameo", "instructions_version", "position")


@admin.action(description="Cancel selected generations")
def cancel(modeladmin, request, queryset):
    for job in queryset:
        try:
            generation_cancel(generation=job)
        except ApiError as exc:
            modeladmin.message_user(request, f"{job.pk}: {exc.detail}", messages.WARNING)


@admin.register(Generation)
class GenerationAdmin(admin.ModelAdmin):
    list_display = ("id", "owner", "status", "progress", "attempts", "error_code", "created_at")
    list_filter = ("status", "error_code")
    search_fields = ("id", "owner__username", "prompt")
    raw_id_fields = ("owner",)
    readonly_fields = [f.name for f in Generation._meta.fields]
    inlines = [GenerationCameoInline]
    actions = [cancel]


@admin.register(Video)
class VideoAdmin(admin.ModelAdmin):
    """Read-only: a video's state changes through its services (publishing, removal) and
    moderation's takedowns, which leave an audit trail (the console, docs/moderation.md)."""

    list_display = ("id", "owner", "state", "seconds", "width", "height", "created_at")
    list_filter = ("state",)
    search_fields = ("id", "owner__username", "sha256")
    raw_id_fields = ("owner", "generation")
    readonly_fields = [f.name for f in Video._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Appearance)
class AppearanceAdmin(admin.ModelAdmin):
    """Read-only: appearances are written with the video (consent decided them)."""

    list_display = ("video", "cameo", "instructions_version")
    raw_id_fields = ("video", "cameo")

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]

    def has_add_permission(self, request):
        return False

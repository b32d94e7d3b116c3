from django.contrib import admin, messages

from config.core.errors import ApiError

from .models import Appearance, Generation, GenerationCameo, SafetyRule, Video, VideoState
from .services import generation_cancel, video_remove


@admin.register(SafetyRule)
class SafetyRuleAdmin(admin.ModelAdmin):
    list_display = ("name", "kind", "pattern", "enabled", "teens_only", "created_at")
    list_filter = ("enabled", "kind", "teens_only")
    list_editable = ("enabled",)
    search_fields = ("name", "pattern")


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


@admin.action(description="Take down (remove everywhere)")
def takedown(modeladmin, request, queryset):
    for video in queryset.exclude(state=VideoState.REMOVED):
        video_remove(video=video, reason=f"taken down by {request.user.username}")


@admin.register(Video)
class VideoAdmin(admin.ModelAdmin):
    list_display = ("id", "owner", "state", "seconds", "width", "height", "created_at")
    list_filter = ("state",)
    search_fields = ("id", "owner__username", "sha256")
    raw_id_fields = ("owner", "generation")
    readonly_fields = ("sha256", "content", "poster", "preview", "removed_reason")
    actions = [takedown]


admin.site.register(Appearance)

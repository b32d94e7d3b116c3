from django.contrib import admin, messages

from config.core.admin import ViewOnly, ViewOnlyFields
from config.core.errors import ApiError

from .models import (
    Appearance,
    Generation,
    GenerationCameo,
    Video,
    WebhookDelivery,
    WebhookEndpoint,
)
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
class VideoAdmin(ViewOnly, admin.ModelAdmin):
    """Read-only: a video's state changes through its services (publishing, removal) and
    moderation's takedowns, which leave an audit trail (the console, docs/moderation.md)."""

    list_display = ("id", "owner", "state", "seconds", "width", "height", "created_at")
    list_filter = ("state",)
    search_fields = ("id", "owner__username", "sha256")
    raw_id_fields = ("owner", "generation")


@admin.register(Appearance)
class AppearanceAdmin(ViewOnlyFields, admin.ModelAdmin):
    """Read-only: appearances are written with the video (consent decided them)."""

    list_display = ("video", "cameo", "instructions_version")
    raw_id_fields = ("video", "cameo")


# --- Webhooks (generation.webhooks) ------------------------------------------------------------


@admin.action(description="Disable selected webhook endpoints (stop their deliveries)")
def webhook_disable(modeladmin, request, queryset):
    from .webhooks.services import webhook_endpoint_disable

    for endpoint in queryset:
        webhook_endpoint_disable(endpoint=endpoint)


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(ViewOnlyFields, admin.ModelAdmin):
    """Read-only: users manage their endpoints through the API. The secrets are not shown
    (they sign deliveries; staff have no use for them)."""

    list_display = ("id", "user", "url", "events", "created_at", "disabled_at")
    list_filter = ("disabled_at",)
    search_fields = ("id", "user__username", "url")
    raw_id_fields = ("user",)
    exclude = ("secret", "previous_secret")
    actions = [webhook_disable]


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ViewOnly, admin.ModelAdmin):
    """Read-only: the delivery log (state changes through generation.webhooks.delivery)."""

    list_display = (
        "id",
        "endpoint",
        "event_type",
        "state",
        "attempts",
        "last_status_code",
        "created_at",
        "delivered_at",
    )
    list_filter = ("state", "event_type")
    search_fields = ("id", "event_id", "endpoint__user__username")
    raw_id_fields = ("endpoint",)

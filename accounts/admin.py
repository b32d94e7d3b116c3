from django.contrib import admin
from django.contrib.admin.utils import unquote
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin

from config.core.admin import ViewOnlyFields

from .apikeys import api_keys_revoke
from .models import ApiKey, AuthToken, Block, Follow, Invite, Notification, User
from .tokens import token_revoke_all, tokens_revoke


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    ordering = ("-created_at",)
    list_display = ("username", "email", "display_name", "is_staff", "is_active", "created_at")
    list_filter = ("is_staff", "is_active")
    search_fields = ("username", "email", "display_name")
    # Suspensions go through moderation (an event with a reason, appealable): shown here, not
    # edited. `is_active` stays editable (deactivating closes every session), but a ban belongs
    # in the console, where it is recorded and can be appealed.
    readonly_fields = ("id", "username_key", "created_at", "last_login", "suspended_until")
    fieldsets = (
        (None, {"fields": ("id", "username", "username_key", "password")}),
        (
            "Profile",
            {
                "fields": (
                    "display_name",
                    "bio",
                    "email",
                    "birth_date",
                    "avatar_large",
                    "avatar_small",
                )
            },
        ),
        (
            "Access",
            {
                "fields": (
                    "is_active",
                    "suspended_until",
                    "is_staff",
                    "is_superuser",
                    "groups",
                    "user_permissions",
                )
            },
        ),
        ("Dates", {"fields": ("created_at", "last_login")}),
    )
    add_fieldsets = (
        (
            None,
            {
                "classes": ("wide",),
                "fields": ("username", "email", "birth_date", "password1", "password2"),
            },
        ),
    )

    # Staff actions that end a user's access also end their sessions and open websockets.
    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        if change and "is_active" in form.changed_data and not obj.is_active:
            token_revoke_all(user=obj)

    def user_change_password(self, request, id, form_url=""):
        user = self.get_object(request, unquote(id))
        before = user.password if user is not None else None
        response = super().user_change_password(request, id, form_url)
        if user is not None and request.method == "POST":
            user.refresh_from_db(fields=["password"])
            if user.password != before:
                token_revoke_all(user=user)
        return response

    def delete_model(self, request, obj):
        token_revoke_all(user=obj)
        super().delete_model(request, obj)

    def delete_queryset(self, request, queryset):
        for user in queryset:
            token_revoke_all(user=user)
        super().delete_queryset(request, queryset)


@admin.register(Invite)
class InviteAdmin(admin.ModelAdmin):
    list_display = ("code", "created_by", "used_by", "used_at", "created_at")
    search_fields = ("code", "created_by__username", "used_by__username")
    raw_id_fields = ("created_by", "used_by")
    readonly_fields = ("code",)

    def save_model(self, request, obj, form, change):
        if not change and not obj.code:
            from .services import new_invite_code

            obj.code = new_invite_code()
        super().save_model(request, obj, form, change)


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin):
    list_display = ("recipient", "kind", "actor", "created_at", "read_at")
    list_filter = ("kind",)
    search_fields = ("recipient__username",)
    raw_id_fields = ("recipient", "actor")


@admin.register(AuthToken)
class AuthTokenAdmin(ViewOnlyFields, admin.ModelAdmin):
    list_display = ("prefix", "user", "created_at", "expires_at", "last_used_at", "revoked_at")
    search_fields = ("user__username", "prefix")
    raw_id_fields = ("user",)
    actions = ["revoke"]

    @admin.action(description="Revoke selected tokens")
    def revoke(self, request, queryset):
        # Through the service, so websockets opened with these tokens close too.
        tokens_revoke(tokens=queryset)


@admin.register(ApiKey)
class ApiKeyAdmin(ViewOnlyFields, admin.ModelAdmin):
    list_display = ("prefix", "name", "user", "created_at", "last_used_at", "revoked_at")
    list_filter = (("revoked_at", admin.EmptyFieldListFilter),)
    search_fields = ("user__username", "prefix", "name")
    list_select_related = ("user",)
    raw_id_fields = ("user",)
    actions = ["revoke"]

    @admin.action(description="Revoke selected API keys")
    def revoke(self, request, queryset):
        count = api_keys_revoke(keys=queryset)
        self.message_user(request, f"Revoked {count} API key(s).")


admin.site.register(Follow)
admin.site.register(Block)
admin.site.site_header = "Riff moderation"

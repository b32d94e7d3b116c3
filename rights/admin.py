"""Admin views of the ledger: read-only. Nothing here can change a balance or a transfer
(the database refuses it anyway); corrections are reversing transfers made by services."""

from __future__ import annotations

from django.contrib import admin

from .catalogue import name_key
from .models import (
    Claim,
    DisputeHold,
    HolderMember,
    IPAsset,
    IPAssetVersion,
    LedgerAccount,
    Payout,
    PayoutStatus,
    RevenueEvent,
    RightsHolder,
    Transfer,
)
from .payouts import payout_transition


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(LedgerAccount)
class LedgerAccountAdmin(ReadOnlyAdmin):
    list_display = (
        "id",
        "owner_type",
        "owner_id",
        "kind",
        "currency",
        "credits_posted",
        "debits_posted",
        "credits_pending",
        "debits_pending",
    )
    list_filter = ("owner_type", "kind", "currency")
    search_fields = ("owner_id",)


@admin.register(Transfer)
class TransferAdmin(ReadOnlyAdmin):
    list_display = ("id", "type", "kind", "role", "amount_micros", "currency", "created_at")
    list_filter = ("type", "kind", "currency")
    search_fields = ("key", "public_id")
    raw_id_fields = ("debit_account", "credit_account", "pending", "reverses", "event")


@admin.register(RevenueEvent)
class RevenueEventAdmin(ReadOnlyAdmin):
    list_display = ("id", "source", "key", "post_id", "amount_micros", "currency", "held")
    list_filter = ("source", "currency", "held")
    search_fields = ("key", "post_id")


@admin.register(Payout)
class PayoutAdmin(ReadOnlyAdmin):
    """Payouts move only through the actions (rights.payouts.payout_transition): approve,
    mark paid (the provider sent the money), mark failed (the reserved money comes back)."""

    list_display = ("id", "user", "amount_micros", "currency", "status", "created_at")
    list_filter = ("status", "currency")
    actions = ("approve", "mark_paid", "mark_failed")

    def has_change_permission(self, request, obj=None):
        # The actions need it; every field is still read-only (ReadOnlyAdmin's add/delete).
        return request.user.is_staff

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]

    def _move(self, request, queryset, to):
        moved, refused = 0, 0
        for payout in queryset:
            try:
                payout_transition(payout=payout, to=to)
                moved += 1
            except Exception as exc:  # an invalid transition is reported, not a 500
                refused += 1
                self.message_user(request, f"{payout.id}: {exc}", level="warning")
        self.message_user(request, f"{moved} payout(s) now {to}; {refused} refused.")

    @admin.action(description="Approve")
    def approve(self, request, queryset):
        self._move(request, queryset, PayoutStatus.APPROVED)

    @admin.action(description="Mark paid")
    def mark_paid(self, request, queryset):
        self._move(request, queryset, PayoutStatus.PAID)

    @admin.action(description="Mark failed (returns the money)")
    def mark_failed(self, request, queryset):
        self._move(request, queryset, PayoutStatus.FAILED)


# --- the rights catalogue -----------------------------------------------------------------


class HolderMemberInline(admin.TabularInline):
    model = HolderMember
    extra = 1
    raw_id_fields = ("user",)
    fields = ("user", "created_at")
    readonly_fields = ("created_at",)


@admin.register(RightsHolder)
class RightsHolderAdmin(admin.ModelAdmin):
    """Staff create holders and manage members here (or through the API); the name key that
    keeps two holders apart is derived, never typed."""

    list_display = ("name", "verified", "created_at")
    list_filter = ("verified",)
    search_fields = ("name",)
    fields = ("name", "verified")
    inlines = (HolderMemberInline,)

    def save_model(self, request, obj, form, change):
        obj.name = " ".join(obj.name.split())
        obj.name_key = name_key(obj.name)
        super().save_model(request, obj, form, change)

    def has_delete_permission(self, request, obj=None):
        return False  # assets and claims name the holder (PROTECT); a holder closes, not vanishes


class IPAssetVersionInline(admin.TabularInline):
    model = IPAssetVersion
    extra = 0
    can_delete = False
    fields = ("version", "policy", "share_bps", "fee_micros", "name", "changed_by", "created_at")
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(IPAsset)
class IPAssetAdmin(ReadOnlyAdmin):
    """Read-only: terms change through the holder's members (PATCH), which versions them."""

    list_display = ("name", "holder", "policy", "share_bps", "fee_micros", "version")
    list_filter = ("policy",)
    search_fields = ("name", "holder__name")
    exclude = ("embedding",)
    inlines = (IPAssetVersionInline,)


@admin.register(Claim)
class ClaimAdmin(ReadOnlyAdmin):
    """Read-only: the video's owner disputes, the holder's members decide (API)."""

    list_display = ("id", "asset", "video_id", "policy", "policy_version", "via", "status")
    list_filter = ("status", "via", "policy")
    search_fields = ("video_id", "asset__name")
    raw_id_fields = ("owner", "asset", "holder", "resolved_by")


@admin.register(DisputeHold)
class DisputeHoldAdmin(ReadOnlyAdmin):
    list_display = ("event", "claim", "settled_at")
    raw_id_fields = ("event", "claim")

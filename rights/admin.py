"""Admin views of the ledger: read-only. Nothing here can change a balance or a transfer
(the database refuses it anyway); corrections are reversing transfers made by services."""

from __future__ import annotations

from django.contrib import admin

from .models import LedgerAccount, Payout, PayoutStatus, RevenueEvent, Transfer
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

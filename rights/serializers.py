"""Request and response bodies of the revenue endpoints (API.md "Rights and revenue")."""

from __future__ import annotations

from rest_framework import serializers

from config.core.fields import InputSerializer, StrictBooleanField, StrictCharField, StrictUUIDField

from .services import MAX_AMOUNT_MICROS, MAX_CREDITS


class StrictIntegerField(serializers.IntegerField):
    """JSON integers only: DRF would also take "5", 5.0 and true."""

    default_error_messages = {"not_an_integer": "Must be an integer."}

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("not_an_integer")
        return super().to_internal_value(data)


class RevenueEventIn(InputSerializer):
    source = StrictCharField(max_length=64, help_text="Where the money came from (ads, tips...).")
    post_id = StrictUUIDField()
    amount_micros = StrictIntegerField(min_value=1, max_value=MAX_AMOUNT_MICROS)
    currency = serializers.RegexField(r"^[A-Z]{3}\Z", max_length=3, help_text="ISO 4217 code.")
    hold = StrictBooleanField(
        required=False,
        default=False,
        help_text="Held revenue: the splits are `pending` until released or voided.",
    )


class PartyOut(serializers.Serializer):
    type = serializers.CharField(help_text="user | holder | platform")
    id = serializers.CharField(allow_null=True)


class SplitOut(serializers.Serializer):
    party = PartyOut()
    role = serializers.CharField(help_text="ip | cameo | ancestor | creator | platform")
    amount_micros = serializers.IntegerField()
    status = serializers.CharField(help_text="posted | pending | voided")


class RevenueEventOut(serializers.Serializer):
    id = serializers.UUIDField()
    source = serializers.CharField()
    post_id = serializers.UUIDField()
    amount_micros = serializers.IntegerField()
    currency = serializers.CharField()
    held = serializers.BooleanField()
    splits = SplitOut(many=True)
    created_at = serializers.DateTimeField()


class BalanceOut(serializers.Serializer):
    currency = serializers.CharField()
    available_micros = serializers.IntegerField()
    pending_micros = serializers.IntegerField()


class EarningLineOut(serializers.Serializer):
    id = serializers.UUIDField()
    kind = serializers.CharField(help_text="split, reversal, payout...")
    role = serializers.CharField(help_text="The split role, or empty.")
    type = serializers.CharField(help_text="posted | pending | post_pending | void_pending")
    amount_micros = serializers.IntegerField(help_text="Positive: in; negative: out.")
    currency = serializers.CharField()
    post_id = serializers.UUIDField(allow_null=True)
    event_id = serializers.UUIDField(allow_null=True)
    created_at = serializers.DateTimeField()


class EarningLinesPage(serializers.Serializer):
    results = EarningLineOut(many=True)
    next = serializers.URLField(allow_null=True)


class EarningsOut(serializers.Serializer):
    balances = BalanceOut(many=True)
    lines = EarningLinesPage()


class CreditsOut(serializers.Serializer):
    balance = serializers.IntegerField()


class CreditGrantIn(InputSerializer):
    username = StrictCharField(max_length=30)
    credits = StrictIntegerField(min_value=1, max_value=MAX_CREDITS)


class CreditGrantOut(serializers.Serializer):
    id = serializers.UUIDField()
    username = serializers.CharField()
    credits = serializers.IntegerField()
    balance = serializers.IntegerField()


class TrialCurrencyOut(serializers.Serializer):
    debits_micros = serializers.IntegerField()
    credits_micros = serializers.IntegerField()
    pending_debits_micros = serializers.IntegerField()
    pending_credits_micros = serializers.IntegerField()


class TrialBalanceOut(serializers.Serializer):
    currencies = serializers.DictField(child=TrialCurrencyOut())


class PayoutIn(InputSerializer):
    amount_micros = StrictIntegerField(min_value=1, max_value=MAX_AMOUNT_MICROS)
    currency = serializers.RegexField(r"^[A-Z]{3}\Z", max_length=3, help_text="ISO 4217 code.")


class PayoutOut(serializers.Serializer):
    id = serializers.UUIDField()
    amount_micros = serializers.IntegerField()
    currency = serializers.CharField()
    status = serializers.CharField(help_text="requested | approved | paid | failed")
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()

"""Request and response bodies of the revenue endpoints (API.md "Rights and revenue")."""

from __future__ import annotations

from rest_framework import serializers

from config.core.fields import InputSerializer, StrictBooleanField, StrictCharField, StrictUUIDField

from .catalogue import MAX_ALIAS_CHARS, MAX_ALIASES, MAX_DESCRIPTION_CHARS, MAX_MEMBERS
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


# --- the rights catalogue -----------------------------------------------------------------


class HolderIn(InputSerializer):
    name = StrictCharField(max_length=120)
    members = serializers.ListField(
        child=StrictCharField(max_length=30), min_length=1, max_length=MAX_MEMBERS
    )


class HolderMemberIn(InputSerializer):
    username = StrictCharField(max_length=30)


class HolderOut(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()
    verified = serializers.BooleanField()
    members = serializers.ListField(
        child=serializers.CharField(), help_text="Usernames; shown to members and staff only."
    )
    created_at = serializers.DateTimeField()


class HolderRefOut(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()
    verified = serializers.BooleanField()


POLICIES = ["blocked", "allowed", "licensed"]


class AssetIn(InputSerializer):
    holder_id = StrictUUIDField()
    name = StrictCharField(max_length=120)
    aliases = serializers.ListField(
        child=StrictCharField(max_length=MAX_ALIAS_CHARS), max_length=MAX_ALIASES, required=False
    )
    description = StrictCharField(
        max_length=MAX_DESCRIPTION_CHARS,
        required=False,
        allow_blank=True,
        help_text="Reference text: what the character looks like and does. The worker's "
        "semantic check compares prompts with it.",
    )
    policy = serializers.ChoiceField(choices=POLICIES)
    share_bps = StrictIntegerField(
        min_value=0, max_value=10_000, required=False, help_text="Licensed only: 1..10000."
    )
    fee_micros = StrictIntegerField(
        min_value=0,
        max_value=10**12,
        required=False,
        help_text="Licensed only: paid to the holder per video that uses the asset.",
    )
    semantic_threshold = serializers.FloatField(
        min_value=0.01, max_value=1.0, required=False, allow_null=True
    )
    cameo_id = StrictUUIDField(
        required=False,
        allow_null=True,
        help_text="A character cameo (owned by a member) that portrays this asset.",
    )


class AssetPatchIn(AssetIn):
    holder_id = None

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("partial", True)
        super().__init__(*args, **kwargs)


class AssetOut(serializers.Serializer):
    id = serializers.UUIDField()
    holder = HolderRefOut()
    name = serializers.CharField()
    aliases = serializers.ListField(child=serializers.CharField())
    description = serializers.CharField()
    policy = serializers.CharField(help_text="blocked | allowed | licensed")
    share_bps = serializers.IntegerField()
    fee_micros = serializers.IntegerField()
    fee_currency = serializers.CharField()
    semantic_threshold = serializers.FloatField(allow_null=True)
    cameo_id = serializers.UUIDField(allow_null=True)
    version = serializers.IntegerField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class AssetsPage(serializers.Serializer):
    results = AssetOut(many=True)
    next = serializers.URLField(allow_null=True)


class CheckMatchOut(serializers.Serializer):
    asset = AssetOut()
    policy = serializers.CharField()
    matched = serializers.CharField(help_text="The text (or @cameo) that matched.")
    via = serializers.CharField(help_text="alias | cameo | semantic | remix")
    score = serializers.FloatField(allow_null=True, help_text="Cosine (semantic only).")


class CheckOut(serializers.Serializer):
    decision = serializers.CharField(help_text="allowed | licensed | blocked")
    matches = CheckMatchOut(many=True)
    semantic = serializers.BooleanField(
        help_text="Whether the semantic check ran (it needs a worker; false when none "
        "answered in time: the alias check alone decided)."
    )


class ClaimOut(serializers.Serializer):
    id = serializers.UUIDField()
    video_id = serializers.UUIDField()
    asset = AssetOut()
    policy = serializers.CharField(help_text="The policy under that version.")
    policy_version = serializers.IntegerField()
    share_bps = serializers.IntegerField()
    via = serializers.CharField(help_text="alias | cameo | semantic | remix")
    matched = serializers.CharField()
    status = serializers.CharField(help_text="active | disputed | upheld | released")
    dispute_reason = serializers.CharField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class ClaimsOut(serializers.Serializer):
    results = ClaimOut(many=True)
    next = serializers.URLField(allow_null=True)


class DisputeIn(InputSerializer):
    reason = StrictCharField(max_length=1000)


class StatementLineOut(serializers.Serializer):
    id = serializers.UUIDField()
    created_at = serializers.DateTimeField()
    kind = serializers.CharField(help_text="split | licence_fee | reversal ...")
    role = serializers.CharField()
    type = serializers.CharField(help_text="posted | pending | post_pending | void_pending")
    amount_micros = serializers.IntegerField(help_text="Positive: in; negative: out.")
    currency = serializers.CharField()
    post_id = serializers.UUIDField(allow_null=True)
    event_id = serializers.UUIDField(allow_null=True)


class StatementTotalOut(serializers.Serializer):
    currency = serializers.CharField()
    opening_micros = serializers.IntegerField(help_text="Posted balance at `from`.")
    posted_in_micros = serializers.IntegerField()
    posted_out_micros = serializers.IntegerField()
    closing_micros = serializers.IntegerField(help_text="Posted balance at `to`.")
    pending_micros = serializers.IntegerField(help_text="Held at `to`.")


class StatementOut(serializers.Serializer):
    holder = HolderRefOut()
    period_from = serializers.DateTimeField()
    period_to = serializers.DateTimeField()
    totals = StatementTotalOut(many=True)
    lines = StatementLineOut(many=True)
    truncated = serializers.BooleanField(
        help_text="More lines than one statement holds: ask for a shorter period."
    )

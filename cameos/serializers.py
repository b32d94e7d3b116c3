from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from accounts.serializers import NameField, UserBriefOut, _clean_text
from config.core.fields import InputSerializer, OutputModelSerializer, StrictCharField

from .models import AccessRequest, Audience, Cameo, CameoGrant, CameoKind


class ChallengeOut(serializers.Serializer):
    digits = serializers.CharField()
    head_turns = serializers.ListField(child=serializers.CharField())
    text = serializers.CharField()
    expires_at = serializers.DateTimeField()


class CameoOut(OutputModelSerializer):
    owner = UserBriefOut()
    challenge = serializers.SerializerMethodField()
    monetization_enabled = serializers.SerializerMethodField()
    can_use = serializers.SerializerMethodField()

    class Meta:
        model = Cameo
        fields = [
            "id",
            "owner",
            "kind",
            "display_name",
            "handle",
            "status",
            "status_reason",
            "audience",
            "instructions",
            "restrictions",
            "instructions_version",
            "monetization_enabled",
            "challenge",
            "can_use",
            "created_at",
        ]

    def _is_owner(self, obj: Cameo) -> bool:
        request = self.context.get("request")
        return bool(request and request.user.pk == obj.owner_id)

    @extend_schema_field(ChallengeOut(allow_null=True))
    def get_challenge(self, obj: Cameo):
        # The liveness challenge is the owner's alone, and only while it can be used.
        if not self._is_owner(obj) or obj.status not in ("awaiting_recording", "rejected"):
            return None
        return obj.challenge or None

    @extend_schema_field(serializers.BooleanField(allow_null=True))
    def get_monetization_enabled(self, obj: Cameo):
        return obj.monetization_enabled if self._is_owner(obj) else None

    @extend_schema_field(serializers.BooleanField(allow_null=True))
    def get_can_use(self, obj: Cameo):
        reason = getattr(obj, "consent_reason", None)
        return None if reason is None else reason in {"owner", "granted", "everyone", "mutual"}


class CameoCreateIn(InputSerializer):
    kind = serializers.ChoiceField(choices=CameoKind.choices)
    display_name = StrictCharField(max_length=60, min_length=1)
    # The username rules (cameos.services._validate_handle), stated in the schema.
    handle = NameField(required=False)

    def validate_display_name(self, value: str) -> str:
        value = _clean_text(value)
        if not value:
            raise serializers.ValidationError("Must not be blank.")
        return value


class CameoUpdateIn(InputSerializer):
    display_name = StrictCharField(max_length=60, min_length=1, required=False)
    audience = serializers.ChoiceField(choices=Audience.choices, required=False)
    instructions = StrictCharField(max_length=500, allow_blank=True, required=False)
    restrictions = StrictCharField(max_length=500, allow_blank=True, required=False)
    monetization_enabled = serializers.BooleanField(required=False)

    def validate(self, attrs):
        for name in ("display_name", "instructions", "restrictions"):
            if name in attrs:
                attrs[name] = _clean_text(attrs[name])
        if "display_name" in attrs and not attrs["display_name"]:
            raise serializers.ValidationError({"display_name": ["Must not be blank."]})
        return attrs


class RecordingIn(InputSerializer):
    video = serializers.FileField()


class GrantIn(InputSerializer):
    username = StrictCharField(max_length=64)


class GrantOut(OutputModelSerializer):
    user = UserBriefOut()

    class Meta:
        model = CameoGrant
        fields = ["user", "created_at"]


class AccessRequestIn(InputSerializer):
    message = StrictCharField(max_length=300, allow_blank=True, required=False)


class AccessRequestOut(OutputModelSerializer):
    requester = UserBriefOut()
    cameo_id = serializers.UUIDField(read_only=True)

    class Meta:
        model = AccessRequest
        fields = ["id", "cameo_id", "requester", "message", "status", "created_at", "decided_at"]

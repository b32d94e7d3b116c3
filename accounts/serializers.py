from __future__ import annotations

from django.core.files.storage import default_storage
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from config.core.fields import (
    InputSerializer,
    OutputModelSerializer,
    StrictCharField,
    StrictUUIDField,
    iso_datetime,
)

from .models import ApiKey, Invite, Notification, User
from .names import validate_name

NAME_MIN_LENGTH = 3
NAME_MAX_LENGTH = 30
# accounts.names.validate_name in the form a schema can carry, for the canonical (ASCII) spelling:
# letters/digits runs joined by "." / "_" separators, never two alike in a row ("a._b" passes,
# "a..b" and "a__b" do not), starting and ending with a letter or digit. The server also folds
# case, full-width and look-alike letters onto this form, and refuses reserved names
# (tests/test_schema_rules.py checks the pattern against validate_name).
NAME_PATTERN = r"^[A-Za-z0-9]+(?:(?:\.(?:_\.)*_?|_(?:\._)*\.?)[A-Za-z0-9]+)*$"


@extend_schema_field(
    {
        "type": "string",
        "minLength": NAME_MIN_LENGTH,
        "maxLength": NAME_MAX_LENGTH,
        "pattern": NAME_PATTERN,
        "description": "Letters, digits, '.' and '_' (no '..' or '__'), starting and ending "
        "with a letter or digit; case-insensitive; reserved names (admin, support, ...) are "
        "refused with 400.",
    }
)
class NameField(StrictCharField):
    """A username or cameo handle, checked with the same rule the services apply."""

    def __init__(self, **kwargs):
        kwargs.setdefault("min_length", NAME_MIN_LENGTH)
        kwargs.setdefault("max_length", NAME_MAX_LENGTH)
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        error = validate_name(value, min_length=NAME_MIN_LENGTH, max_length=NAME_MAX_LENGTH)
        if error:
            raise serializers.ValidationError(error)
        return value


def media_url(request, name: str) -> str | None:
    """Absolute URL of a stored file (storage URL; S3 URLs are already absolute)."""
    if not name:
        return None
    url = default_storage.url(name)
    return request.build_absolute_uri(url) if request is not None else url


class UserBriefOut(OutputModelSerializer):
    """How another user is shown inside lists and objects."""

    avatar_url = serializers.SerializerMethodField()

    class Meta:
        model = User
        fields = ["id", "username", "display_name", "avatar_url"]

    @extend_schema_field(serializers.URLField(allow_null=True))
    def get_avatar_url(self, obj: User) -> str | None:
        return media_url(self.context.get("request"), obj.avatar_small)


class MeOut(OutputModelSerializer):
    avatar_url = serializers.SerializerMethodField()
    avatar_small_url = serializers.SerializerMethodField()
    is_teen = serializers.BooleanField(read_only=True)

    class Meta:
        model = User
        fields = [
            "id",
            "username",
            "display_name",
            "bio",
            "avatar_url",
            "avatar_small_url",
            "is_teen",
            "email",
            "created_at",
        ]

    @extend_schema_field(serializers.URLField(allow_null=True))
    def get_avatar_url(self, obj: User) -> str | None:
        return media_url(self.context.get("request"), obj.avatar_large)

    @extend_schema_field(serializers.URLField(allow_null=True))
    def get_avatar_small_url(self, obj: User) -> str | None:
        return media_url(self.context.get("request"), obj.avatar_small)


def me_out(user: User, request) -> dict:
    """`MeOut` of `user`, built directly: `GET /me` is the cheapest authenticated read, and
    the serializer's per-request field set-up was a sizeable part of it. A test holds the two
    to the same output."""
    return {
        "id": str(user.pk),
        "username": user.username,
        "display_name": user.display_name,
        "bio": user.bio,
        "avatar_url": media_url(request, user.avatar_large),
        "avatar_small_url": media_url(request, user.avatar_small),
        "is_teen": user.is_teen,
        "email": user.email,
        "created_at": iso_datetime(user.created_at),
    }


class MeIn(InputSerializer):
    display_name = StrictCharField(max_length=60, allow_blank=True, required=False)
    bio = StrictCharField(max_length=300, allow_blank=True, required=False)

    def validate_display_name(self, value: str) -> str:
        return _clean_text(value)

    def validate_bio(self, value: str) -> str:
        return _clean_text(value)


def _clean_text(value: str) -> str:
    import unicodedata

    # Control and bidi-override characters let a name render as something else.
    cleaned = "".join(
        ch for ch in value if unicodedata.category(ch) not in {"Cc", "Cf"} or ch in "\n"
    )
    return cleaned.strip()


class ProfileOut(OutputModelSerializer):
    avatar_url = serializers.SerializerMethodField()
    is_teen = serializers.SerializerMethodField()
    followers_count = serializers.IntegerField()
    following_count = serializers.IntegerField()
    is_following = serializers.BooleanField()
    is_mutual = serializers.SerializerMethodField()
    follows_me = serializers.BooleanField()

    class Meta:
        model = User
        fields = [
            "id",
            "username",
            "display_name",
            "bio",
            "avatar_url",
            "is_teen",
            "created_at",
            "followers_count",
            "following_count",
            "is_following",
            "follows_me",
            "is_mutual",
        ]

    @extend_schema_field(serializers.URLField(allow_null=True))
    def get_avatar_url(self, obj: User) -> str | None:
        return media_url(self.context.get("request"), obj.avatar_large)

    def get_is_teen(self, obj: User) -> bool:
        # A minor's age bracket is shown only to themselves.
        request = self.context.get("request")
        return bool(request and request.user.pk == obj.pk and obj.is_teen)

    def get_is_mutual(self, obj: User) -> bool:
        return bool(obj.is_following and obj.follows_me)


class RegisterIn(InputSerializer):
    username = NameField()
    email = serializers.EmailField(max_length=254)
    password = StrictCharField(max_length=128, write_only=True, trim_whitespace=False)
    invite_code = StrictCharField(max_length=64)
    birth_date = serializers.DateField()


class LoginIn(InputSerializer):
    username = StrictCharField(max_length=64)
    password = StrictCharField(max_length=128, trim_whitespace=False)


class AuthOut(serializers.Serializer):
    token = serializers.CharField()
    user = MeOut()


class InviteOut(OutputModelSerializer):
    used_by = UserBriefOut(allow_null=True)

    class Meta:
        model = Invite
        fields = ["code", "created_at", "used_by", "used_at"]


class NotificationOut(OutputModelSerializer):
    actor = UserBriefOut(allow_null=True)
    read = serializers.SerializerMethodField()

    class Meta:
        model = Notification
        fields = ["id", "kind", "actor", "data", "read", "created_at"]

    def get_read(self, obj: Notification) -> bool:
        return obj.read_at is not None


class NotificationsReadIn(InputSerializer):
    ids = serializers.ListField(child=StrictUUIDField(), required=False, max_length=500)


class NotificationsReadOut(serializers.Serializer):
    marked = serializers.IntegerField()


class FollowerRowOut(serializers.Serializer):
    """One row of a followers list."""

    user = UserBriefOut(source="follower")
    followed_at = serializers.DateTimeField(source="created_at")


class FollowingRowOut(serializers.Serializer):
    """One row of a following list."""

    user = UserBriefOut(source="followee")
    followed_at = serializers.DateTimeField(source="created_at")


class AvatarIn(InputSerializer):
    image = serializers.FileField()


class TicketOut(serializers.Serializer):
    ticket = serializers.CharField()
    expires_in = serializers.IntegerField()
    url = serializers.CharField()


class StatusOut(serializers.Serializer):
    status = serializers.CharField()


# --- Videos API keys ---------------------------------------------------------------------------


class ApiKeyIn(InputSerializer):
    name = StrictCharField(
        max_length=100, help_text="What the key is for, so you can tell keys apart later."
    )

    def validate_name(self, value: str) -> str:
        cleaned = _clean_text(value)
        if not cleaned:
            raise serializers.ValidationError("Give the key a name.")
        return cleaned


class ApiKeyOut(OutputModelSerializer):
    """A live API key as lists show it: never the secret, only its first characters."""

    class Meta:
        model = ApiKey
        fields = ["id", "name", "prefix", "created_at", "last_used_at"]
        extra_kwargs = {
            "prefix": {"help_text": "The first 12 characters of the key (`rk_` and 9 more)."},
            "last_used_at": {"help_text": "Updated at most every few minutes; null if never."},
        }


class ApiKeyCreatedOut(OutputModelSerializer):
    """The key just created. `key` is the secret, in this response only: store it now."""

    key = serializers.SerializerMethodField()

    class Meta:
        model = ApiKey
        fields = ["id", "name", "prefix", "key", "created_at"]

    @extend_schema_field(
        serializers.CharField(
            help_text="The secret (`rk_` + 43 characters): `Authorization: Bearer <key>` on "
            "/v1/. Shown only here; Riff stores only its hash."
        )
    )
    def get_key(self, obj: ApiKey) -> str:
        return self.context["key"]

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from accounts.serializers import UserBriefOut
from config.core.fields import (
    InputSerializer,
    OutputModelSerializer,
    StrictBooleanField,
    StrictCharField,
    StrictUUIDField,
)
from generation.serializers import VideoOut

from .models import Comment, EventKind, Post


class PostIn(InputSerializer):
    video_id = StrictUUIDField()
    caption = StrictCharField(max_length=2200, required=False, allow_blank=True, default="")
    allow_remix = StrictBooleanField(required=False, default=True)


class CameoBriefOut(serializers.Serializer):
    id = serializers.UUIDField()
    handle = serializers.CharField()


class PostOut(OutputModelSerializer):
    """Expects a post passed through feed.selectors.annotate_posts."""

    author = UserBriefOut()
    video = VideoOut()
    like_count = serializers.IntegerField()
    comment_count = serializers.IntegerField()
    remix_count = serializers.IntegerField()
    view_count = serializers.IntegerField()
    remix_of = serializers.UUIDField(source="remix_of_id", allow_null=True)
    root = serializers.UUIDField(source="root_id")
    cameos = serializers.SerializerMethodField()
    liked_by_me = serializers.BooleanField()

    class Meta:
        model = Post
        fields = [
            "id",
            "author",
            "video",
            "caption",
            "allow_remix",
            "like_count",
            "comment_count",
            "remix_count",
            "view_count",
            "remix_of",
            "root",
            "depth",
            "cameos",
            "liked_by_me",
            "created_at",
        ]

    @extend_schema_field(CameoBriefOut(many=True))
    def get_cameos(self, obj: Post) -> list[dict]:
        return [{"id": str(c.pk), "handle": c.handle} for c in obj.cameo_briefs]


class LikeOut(serializers.Serializer):
    liked = serializers.BooleanField()
    like_count = serializers.IntegerField()


class CommentIn(InputSerializer):
    body = StrictCharField(max_length=1000, min_length=1)

    def validate_body(self, value: str) -> str:
        value = value.strip()
        if not value:
            raise serializers.ValidationError("Must not be blank.")
        return value


class CommentOut(OutputModelSerializer):
    author = UserBriefOut()
    post = serializers.UUIDField(source="post_id")

    class Meta:
        model = Comment
        fields = ["id", "post", "author", "body", "created_at"]


EVENT_NAMES = {label: value for value, label in EventKind.choices}


class FeedEventIn(InputSerializer):
    post_id = StrictUUIDField()
    serve_id = StrictCharField(max_length=64)
    event = serializers.ChoiceField(choices=sorted(EVENT_NAMES))
    watched_ms = serializers.IntegerField(required=False, min_value=0, max_value=3_600_000)


class FeedEventsIn(InputSerializer):
    events = FeedEventIn(many=True, allow_empty=False, max_length=200)


class FeedEventsOut(serializers.Serializer):
    accepted = serializers.IntegerField()
    rejected = serializers.IntegerField()


class CreatePromptOut(serializers.Serializer):
    type = serializers.CharField(help_text="remix_this | use_cameo | cameo_open | ...")
    text = serializers.CharField()
    post_id = serializers.UUIDField(required=False)
    cameo_id = serializers.UUIDField(required=False)


class FeedItemOut(serializers.Serializer):
    """`kind` says which of `post` / `prompt` is present."""

    kind = serializers.ChoiceField(choices=["post", "create_prompt"])
    post = PostOut(required=False)
    prompt = CreatePromptOut(required=False)
    serve_id = serializers.CharField()
    reason = serializers.CharField()


class FeedPreferencesIn(InputSerializer):
    steer = StrictCharField(max_length=500, required=False, allow_blank=True, default="")
    personalized = StrictBooleanField(required=False, default=True)


class FeedPreferencesOut(serializers.Serializer):
    steer = serializers.CharField()
    personalized = serializers.BooleanField()
    steer_ready = serializers.BooleanField(
        help_text="Whether the steering text has been embedded and is shaping the feed yet."
    )
    updated_at = serializers.DateTimeField(allow_null=True)


class MetricShareOut(serializers.Serializer):
    share = serializers.FloatField(allow_null=True, help_text="null when the base is empty")


class DayOneCreationOut(MetricShareOut):
    users = serializers.IntegerField()
    created = serializers.IntegerField()


class ReturningSessionsOut(MetricShareOut):
    sessions = serializers.IntegerField()
    with_creation = serializers.IntegerField()


class PostingUsersOut(MetricShareOut):
    users = serializers.IntegerField()
    posted = serializers.IntegerField()


class InspiredRowOut(serializers.Serializer):
    impressions = serializers.IntegerField()
    creations = serializers.IntegerField()
    per_1000 = serializers.FloatField(allow_null=True)


class InspiredBySourceOut(InspiredRowOut):
    reason = serializers.CharField()


class InspiredByCardOut(InspiredRowOut):
    card_type = serializers.CharField()


class InspiredOut(serializers.Serializer):
    by_source = InspiredBySourceOut(many=True)
    by_card_type = InspiredByCardOut(many=True)


class CreationMetricsOut(serializers.Serializer):
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    day_one_creation = DayOneCreationOut()
    returning_sessions = ReturningSessionsOut()
    posting_users = PostingUsersOut()
    inspired = InspiredOut()

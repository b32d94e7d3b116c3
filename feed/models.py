"""Posts, their engagement, feed events and feed preferences.

Counters are exact but never a hot row: each post's counts are spread over
`COUNTER_SHARDS` rows (`PostCounter`), a write bumps one shard chosen at random in the same
transaction as the like/comment/remix row it counts, and a read sums the shards of a whole page
in one query. Feed events are append-only rows in a range-partitioned table (see migration
0002 and `feed.partitions`), so old months can be detached instead of deleted row by row.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

COUNTER_SHARDS = 8


class PostState(models.TextChoices):
    LIVE = "live"
    # Hidden by moderation, reversibly (post_takedown / post_restore); back to `live` on restore.
    TAKEN_DOWN = "taken_down"
    # Final: deleted by its author, the video removed (a cameo owner, account deletion) or a
    # cameo revoked.
    REMOVED = "removed"


class Post(models.Model):
    """A published draft. `state` changes only in feed.services (post_delete / hooks)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="posts"
    )
    video = models.OneToOneField("generation.Video", on_delete=models.CASCADE, related_name="post")
    caption = models.CharField(max_length=2200, blank=True)
    allow_remix = models.BooleanField(default=True)
    state = models.CharField(max_length=16, choices=PostState.choices, default=PostState.LIVE)
    removed_reason = models.CharField(max_length=200, blank=True)
    # While `taken_down`: why and since when (cleared on restore; moderation keeps the history).
    takedown_reason = models.CharField(max_length=200, blank=True)
    taken_down_at = models.DateTimeField(null=True, blank=True)
    # Remix lineage, fixed when the post is published (remix/ owns the queries over it). A root
    # post is its own root at depth 0. No FK cascade on the parent: deleting a post hides it,
    # its remixes keep their place in the chain.
    remix_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="remixes"
    )
    root_id = models.UUIDField()
    depth = models.PositiveIntegerField(default=0)
    # Cameo ids in the video, denormalised at publish for the cameo-graph feed source.
    cameo_ids = models.JSONField(default=list, blank=True)
    # Prompt embedding (MiniLM, 384 floats) for diversity and steering; filled by a worker.
    embedding = models.BinaryField(null=True, blank=True)
    # The feed impression that inspired it (copied from the generation).
    serve_id = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [
            models.Index(
                fields=["-created_at", "-id"], condition=Q(state="live"), name="post_live_idx"
            ),
            models.Index(fields=["author", "-created_at", "-id"], name="post_author_idx"),
            models.Index(
                fields=["remix_of", "-created_at", "-id"],
                condition=Q(remix_of__isnull=False),
                name="post_parent_idx",
            ),
            models.Index(fields=["root_id", "depth"], name="post_root_idx"),
        ]
        constraints = [
            # A remix sits below its parent. (A root has depth 0; a remix whose parent row was
            # deleted keeps its depth, so depth > 0 without a parent is allowed.)
            models.CheckConstraint(
                condition=~Q(remix_of__isnull=False, depth=0), name="post_remix_has_depth"
            ),
        ]

    def __str__(self) -> str:
        return f"post {self.id}"


class PostCounter(models.Model):
    """One shard of a post's counts; the exact count is the sum over its shards."""

    post = models.ForeignKey(Post, on_delete=models.CASCADE, related_name="counter_shards")
    shard = models.PositiveSmallIntegerField()
    likes = models.IntegerField(default=0)
    comments = models.IntegerField(default=0)
    remixes = models.IntegerField(default=0)
    views = models.BigIntegerField(default=0)
    # Scoring signals, counted like views (once per serve): ranking reads them per candidate
    # from these shards instead of aggregating the event table.
    completes = models.BigIntegerField(default=0, db_default=0)
    see_less = models.BigIntegerField(default=0, db_default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["post", "shard"], name="post_counter_shard_unique")
        ]

    def __str__(self) -> str:
        return f"{self.post_id}#{self.shard}"


class Like(models.Model):
    post = models.ForeignKey(Post, on_delete=models.CASCADE, related_name="likes")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["post", "user"], name="like_unique")]
        indexes = [models.Index(fields=["user", "-created_at"], name="like_user_idx")]

    def __str__(self) -> str:
        return f"{self.user_id} likes {self.post_id}"


class Comment(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    post = models.ForeignKey(Post, on_delete=models.CASCADE, related_name="comments")
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="comments"
    )
    body = models.CharField(max_length=1000)
    # Set while moderation hides the comment (comment_takedown / comment_restore): it leaves
    # the post's comment list for everyone, its author included, and its comment_count.
    hidden_at = models.DateTimeField(null=True, blank=True)
    hidden_reason = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["post", "-created_at", "-id"], name="comment_post_idx")]

    def __str__(self) -> str:
        return f"comment {self.id}"


class EventKind(models.IntegerChoices):
    """Stored as a smallint: the event table is the biggest in the system."""

    IMPRESSION = 1, "impression"
    WATCHED = 2, "watched"
    COMPLETED = 3, "completed"
    SEE_LESS = 4, "see_less"
    SEE_MORE = 5, "see_more"
    SHARE = 6, "share"


class FeedEvent(models.Model):
    """Append-only. Range-partitioned by month on `created_at` (created by raw SQL in the
    migration; Django only reads and bulk-inserts). No foreign keys: an insert checks nothing
    and deleting a user never cascades through tens of millions of rows (the account deletion
    hook deletes that user's rows explicitly)."""

    id = models.BigAutoField(primary_key=True)
    created_at = models.DateTimeField(default=timezone.now)
    user_id = models.UUIDField()
    post_id = models.UUIDField()
    serve_id = models.CharField(max_length=64)
    kind = models.SmallIntegerField(choices=EventKind.choices)
    watched_ms = models.IntegerField(null=True)

    class Meta:
        managed = False
        db_table = "feed_feedevent"

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.post_id}"


class FeedPreference(models.Model):
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="feed_preference"
    )
    steer = models.CharField(max_length=500, blank=True)
    personalized = models.BooleanField(default=True)
    # MiniLM embedding of `steer` (float32 bytes), computed by a worker task.
    steer_embedding = models.BinaryField(null=True, blank=True)
    updated_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"feed preferences of {self.user_id}"

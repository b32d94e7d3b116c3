from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone


class GenerationStatus(models.TextChoices):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


class Aspect(models.TextChoices):
    PORTRAIT = "9:16"
    LANDSCAPE = "16:9"
    SQUARE = "1:1"


class SourceMode(models.TextChoices):
    EXTEND = "extend"
    REMIX = "remix"
    EDIT = "edit"


class Generation(models.Model):
    """A generation job. `status` changes only through services.generation_transition()."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="generations"
    )
    prompt = models.TextField()
    # The post this remixes (feed.Post, a higher layer: kept as a plain id here).
    remix_of_id = models.UUIDField(null=True, blank=True)
    # The feed impression that inspired it, for creation attribution.
    serve_id = models.CharField(max_length=64, blank=True)
    seconds = models.PositiveSmallIntegerField(default=2)
    aspect = models.CharField(max_length=5, choices=Aspect.choices, default=Aspect.PORTRAIT)
    seed = models.BigIntegerField()
    # The engine asked for (the Videos API's `model`); blank: the configured default.
    model = models.CharField(max_length=64, blank=True)
    # The delivered frame size "WxH" (the Videos API's `size`); blank: `aspect` at
    # RIFF_VIDEO_SHORT_SIDE on the short side.
    size = models.CharField(max_length=16, blank=True)
    # A video of the caller's this job starts from: `extend` continues it and delivers the
    # stitched whole, `remix` conditions on its last frames, `edit` re-renders it under a new
    # prompt (docs/videos-api.md). Consent covers that video's cameos as well.
    source_video = models.ForeignKey(
        "generation.Video",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="derived_generations",
    )
    source_mode = models.CharField(max_length=8, choices=SourceMode.choices, blank=True)
    # Storage name of an uploaded first-frame reference image (the Videos API's
    # `input_reference`), re-encoded as PNG; blank: none.
    reference_image = models.CharField(max_length=255, blank=True)
    # Deleted through the Videos API: gone from /v1 lists and lookups (the row stays for the
    # quota, the ledger and moderation).
    api_deleted_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(
        max_length=16, choices=GenerationStatus.choices, default=GenerationStatus.QUEUED
    )
    progress = models.FloatField(default=0.0)
    error_code = models.CharField(max_length=64, blank=True)
    error_message = models.CharField(max_length=300, blank=True)
    # Each claim by a worker increments `attempts`; it doubles as the fencing token, so a worker
    # whose lease expired can never finish a job another worker has taken over.
    attempts = models.PositiveSmallIntegerField(default=0)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    worker = models.CharField(max_length=200, blank=True)
    dispatched_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["owner", "-created_at", "-id"], name="gen_owner_idx"),
            models.Index(
                fields=["lease_expires_at"],
                condition=Q(status="running"),
                name="gen_running_lease_idx",
            ),
            models.Index(
                fields=["dispatched_at"], condition=Q(status="queued"), name="gen_queued_idx"
            ),
            # Remix attempts per post (For You's creation signals) and a post's remix jobs.
            models.Index(
                fields=["remix_of_id"], condition=Q(remix_of_id__isnull=False), name="gen_remix_idx"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.id} ({self.status})"


class GenerationCameo(models.Model):
    """A cameo a generation uses, with the instructions version it was admitted with."""

    generation = models.ForeignKey(Generation, on_delete=models.CASCADE, related_name="cameo_links")
    cameo = models.ForeignKey(
        "cameos.Cameo", on_delete=models.CASCADE, related_name="generation_links"
    )
    instructions_version = models.PositiveIntegerField()
    position = models.PositiveSmallIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["generation", "cameo"], name="gen_cameo_unique")
        ]
        indexes = [models.Index(fields=["cameo", "generation"], name="gen_cameo_idx")]

    def __str__(self) -> str:
        return f"{self.generation_id} uses {self.cameo_id}"


class VideoState(models.TextChoices):
    DRAFT = "draft"
    POSTED = "posted"
    # Held for review: the output check (the `video.output_check` hook) found a problem in its
    # frames. Hidden like `taken_down` (its owner sees the state, nobody sees the content) until
    # moderation releases it (-> draft) or takes it down.
    HELD = "held"
    # Hidden by moderation, reversibly: files kept, back to `state_before_takedown` on restore.
    TAKEN_DOWN = "taken_down"
    # Final: consent withdrawn, deleted by its author or account; the files are deleted.
    REMOVED = "removed"


class Video(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="videos"
    )
    # One video per generation, enforced by the database: a duplicate delivery can't make two.
    generation = models.OneToOneField(Generation, on_delete=models.CASCADE, related_name="video")
    state = models.CharField(max_length=16, choices=VideoState.choices, default=VideoState.DRAFT)
    seconds = models.FloatField()
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    frame_count = models.PositiveIntegerField()
    content = models.CharField(max_length=255)
    poster = models.CharField(max_length=255)
    preview = models.CharField(max_length=255)
    sha256 = models.CharField(max_length=64, db_index=True)
    # A tiled JPEG of sampled frames (the Videos API's `spritesheet` variant); blank for videos
    # rendered before it existed (made on first request).
    spritesheet = models.CharField(max_length=255, blank=True)
    # The engine's own frames before letterbox, watermark and encoding (compressed .npz, a few
    # hundred KB): what an extension continues and stitches, so it is rendered once.
    engine_frames = models.CharField(max_length=255, blank=True)
    removed_reason = models.CharField(max_length=200, blank=True)
    # While `taken_down`: where a restore returns it (draft or posted), why and since when.
    state_before_takedown = models.CharField(max_length=16, choices=VideoState.choices, blank=True)
    takedown_reason = models.CharField(max_length=200, blank=True)
    taken_down_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [
            models.Index(fields=["owner", "state", "-created_at", "-id"], name="video_owner_idx")
        ]

    def __str__(self) -> str:
        return f"video {self.id} ({self.state})"


class Appearance(models.Model):
    """A cameo in a video. Its owner sees every one, other people's drafts included."""

    video = models.ForeignKey(Video, on_delete=models.CASCADE, related_name="appearances")
    cameo = models.ForeignKey("cameos.Cameo", on_delete=models.CASCADE, related_name="appearances")
    instructions_version = models.PositiveIntegerField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["video", "cameo"], name="appearance_unique")]
        indexes = [
            models.Index(fields=["cameo", "-created_at", "-id"], name="appearance_cameo_idx")
        ]

    def __str__(self) -> str:
        return f"{self.cameo_id} in {self.video_id}"


# The prompt blocklist (`SafetyRule`) moved to moderation.models with the other safety rules
# (moderation migration 0003 copies the rows, generation 0004 drops the old table).


# --- Webhooks (generation.webhooks, docs/webhooks.md) ----------------------------------------


class WebhookEvent(models.TextChoices):
    VIDEO_COMPLETED = "video.completed"
    VIDEO_FAILED = "video.failed"
    VIDEO_CANCELLED = "video.cancelled"


class WebhookEndpoint(models.Model):
    """A URL of a user's that receives signed events about their videos.

    `secret` is kept in the clear, unlike API keys and tokens: every delivery is signed with it
    (HMAC needs the key itself), so a hash would be useless. It is shown to its owner only when
    the endpoint is created and when it is rotated. During a rotation's grace period the
    previous secret signs too, until `previous_secret_expires_at`."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="webhook_endpoints"
    )
    url = models.CharField(max_length=2000)
    # A non-empty list of WebhookEvent values, without duplicates (the service checks).
    events = models.JSONField()
    secret = models.CharField(max_length=100)
    previous_secret = models.CharField(max_length=100, blank=True)
    previous_secret_expires_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    # Set by staff (the admin) to stop deliveries to an endpoint without deleting its log.
    disabled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            # The owner's list, and the one query an event costs a user without endpoints.
            models.Index(fields=["user", "-created_at", "-id"], name="webhook_user_idx")
        ]

    def __str__(self) -> str:
        return f"webhook {self.id} -> {self.url[:80]}"


class WebhookDeliveryState(models.TextChoices):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class WebhookDelivery(models.Model):
    """One event for one endpoint, through all its attempts. `state` changes only through
    generation.webhooks.services.webhook_delivery_transition().

    `event_id` is the Standard Webhooks `webhook-id`: the same for every attempt and every
    manual redelivery, so a receiver can drop duplicates. `payload` is the body as sent
    (`{id, object, created_at, type, data}`); `next_attempt_at` is when a pending delivery is
    due, and while an attempt is in flight, the end of its lease."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    endpoint = models.ForeignKey(
        WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries"
    )
    event_id = models.CharField(max_length=40)
    event_type = models.CharField(max_length=32, choices=WebhookEvent.choices)
    payload = models.JSONField()
    state = models.CharField(
        max_length=16, choices=WebhookDeliveryState.choices, default=WebhookDeliveryState.PENDING
    )
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=300, blank=True)
    # The first KB of the receiver's last answer, for the owner's delivery log.
    last_response = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["endpoint", "event_id"], name="webhook_delivery_event_unique"
            )
        ]
        indexes = [
            models.Index(
                fields=["endpoint", "-created_at", "-id"], name="webhook_delivery_log_idx"
            ),
            # The sweep's scan: pending deliveries by when they are due.
            models.Index(
                fields=["next_attempt_at"],
                condition=Q(state="pending"),
                name="webhook_delivery_due_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event_type} {self.event_id} ({self.state})"

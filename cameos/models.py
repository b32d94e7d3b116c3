from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone


class CameoKind(models.TextChoices):
    PERSON = "person"
    PET = "pet"
    OBJECT = "object"
    # Owned by a rights holder's account once the rights app registers it.
    CHARACTER = "character"


class CameoStatus(models.TextChoices):
    AWAITING_RECORDING = "awaiting_recording"
    VERIFYING = "verifying"
    NEEDS_REVIEW = "needs_review"
    ACTIVE = "active"
    REJECTED = "rejected"
    REVOKED = "revoked"


class Audience(models.TextChoices):
    ONLY_ME = "only_me"
    APPROVED = "approved"
    MUTUALS = "mutuals"
    EVERYONE = "everyone"


class Cameo(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="cameos"
    )
    kind = models.CharField(max_length=16, choices=CameoKind.choices)
    display_name = models.CharField(max_length=60)
    # `handle` is shown and typed as @handle; `handle_key` (see accounts.names) is what is unique.
    handle = models.CharField(max_length=30)
    handle_key = models.CharField(max_length=30, unique=True)
    # Changed only by services.cameo_transition().
    status = models.CharField(
        max_length=24, choices=CameoStatus.choices, default=CameoStatus.AWAITING_RECORDING
    )
    status_reason = models.CharField(max_length=200, blank=True)
    audience = models.CharField(max_length=16, choices=Audience.choices, default=Audience.APPROVED)
    monetization_enabled = models.BooleanField(default=False)
    # The current instructions/restrictions; every version is kept in CameoInstructions.
    instructions = models.TextField(blank=True)
    restrictions = models.TextField(blank=True)
    instructions_version = models.PositiveIntegerField(default=1)
    # Liveness challenge: {"digits": "4821", "head_turns": ["left", "right"], "expires_at": iso}.
    challenge = models.JSONField(default=dict, blank=True)
    recording = models.CharField(max_length=255, blank=True)
    recording_info = models.JSONField(default=dict, blank=True)
    # Storage names of a few representative frames the generator receives.
    reference_frames = models.JSONField(default=list, blank=True)
    verification = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [
            models.Index(fields=["owner", "-created_at", "-id"], name="cameo_owner_idx"),
            models.Index(fields=["status", "audience"], name="cameo_status_idx"),
        ]

    def __str__(self) -> str:
        return f"@{self.handle}"


class CameoReview(Cameo):
    """The admin's review queue: cameos in `needs_review`."""

    class Meta:
        proxy = True
        verbose_name = "cameo awaiting review"
        verbose_name_plural = "cameo review queue"


class CameoInstructions(models.Model):
    """Every version of a cameo's instructions; videos record the version they used."""

    cameo = models.ForeignKey(Cameo, on_delete=models.CASCADE, related_name="instruction_versions")
    version = models.PositiveIntegerField()
    instructions = models.TextField(blank=True)
    restrictions = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["cameo", "version"], name="cameo_instr_unique")
        ]

    def __str__(self) -> str:
        return f"{self.cameo_id} v{self.version}"


class CameoGrant(models.Model):
    cameo = models.ForeignKey(Cameo, on_delete=models.CASCADE, related_name="grants")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="cameo_grants"
    )
    granted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["cameo", "user"], name="cameo_grant_unique")]
        indexes = [models.Index(fields=["user", "cameo"], name="cameo_grant_user_idx")]

    def __str__(self) -> str:
        return f"{self.user_id} may use {self.cameo_id}"


class AccessRequestStatus(models.TextChoices):
    PENDING = "pending"
    APPROVED = "approved"
    DENIED = "denied"
    # The requester lost the relationship (blocked) or the cameo was revoked.
    CANCELLED = "cancelled"


class AccessRequest(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    cameo = models.ForeignKey(Cameo, on_delete=models.CASCADE, related_name="access_requests")
    requester = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="cameo_access_requests"
    )
    message = models.CharField(max_length=300, blank=True)
    # Changed only by services.access_request_transition().
    status = models.CharField(
        max_length=16, choices=AccessRequestStatus.choices, default=AccessRequestStatus.PENDING
    )
    created_at = models.DateTimeField(default=timezone.now)
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            # One open request per person per cameo, enforced by the database under races.
            models.UniqueConstraint(
                fields=["cameo", "requester"],
                condition=Q(status="pending"),
                name="cameo_request_one_pending",
            )
        ]
        indexes = [models.Index(fields=["cameo", "-created_at", "-id"], name="cameo_request_idx")]

    def __str__(self) -> str:
        return f"{self.requester_id} -> {self.cameo_id} ({self.status})"


class CameoEvent(models.Model):
    """Audit trail of every status change and moderation decision (insert-only)."""

    cameo = models.ForeignKey(Cameo, on_delete=models.CASCADE, related_name="events")
    from_status = models.CharField(max_length=24)
    to_status = models.CharField(max_length=24)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    reason = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["cameo", "created_at"], name="cameo_event_idx")]

    def __str__(self) -> str:
        return f"{self.cameo_id}: {self.from_status} -> {self.to_status}"

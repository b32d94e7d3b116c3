"""Trust and safety: reports, tickets, the append-only moderation events, the status each
subject's events add up to, appeals (docs/moderation.md).

Event-sourced like Bluesky's Ozone: every moderation action is a `ModerationEvent` (insert-only,
a trigger refuses UPDATE/DELETE), written by one service (moderation.services.event_record),
and a subject's `SubjectStatus` is a projection of its events (moderation.projection) that can
always be rebuilt from them.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone


class SubjectType(models.TextChoices):
    POST = "post"
    VIDEO = "video"
    COMMENT = "comment"
    CAMEO = "cameo"
    USER = "user"
    GENERATION = "generation"


class Reason(models.TextChoices):
    LIKENESS_MISUSE = "likeness_misuse"
    SEXUAL_DEEPFAKE = "sexual_deepfake"
    MISLEADING_SYNTHETIC = "misleading_synthetic"
    IP_INFRINGEMENT = "ip_infringement"
    HARASSMENT = "harassment"
    HATE = "hate"
    VIOLENCE = "violence"
    SELF_HARM = "self_harm"
    MINOR_SAFETY = "minor_safety"
    SPAM = "spam"
    OTHER = "other"


class TicketStatus(models.TextChoices):
    OPEN = "open"
    ASSIGNED = "assigned"
    ESCALATED = "escalated"
    CLOSED = "closed"


class Outcome(models.TextChoices):
    NONE = ""  # not decided yet
    ACTIONED = "actioned"  # an action was taken on the subject
    NO_ACTION = "no_action"  # looked at; nothing wrong found


class Ticket(models.Model):
    """The queue's unit: every open report on one subject, together. Reporters each keep their
    own Report; the ticket gathers them (distinct reporters raise its priority) and carries the
    status and outcome they all see. At most one ticket per subject is not closed."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    subject_type = models.CharField(max_length=16, choices=SubjectType.choices)
    subject_id = models.CharField(max_length=64)
    # The moderation queue it is routed to ("queue" in the API; not named so here, because a
    # `queue=` keyword is how tests/test_tasks.py finds Celery routing outside config/celery.py).
    work_queue = models.CharField(max_length=32)
    # The most severe reason any of its reports gave.
    reason = models.CharField(max_length=32, choices=Reason.choices)
    status = models.CharField(
        max_length=16, choices=TicketStatus.choices, default=TicketStatus.OPEN
    )
    priority = models.IntegerField(default=0)  # points: moderation.priority
    reporter_count = models.PositiveIntegerField(default=0)
    # A cameo's owner reported a video showing their likeness: first in the queue.
    likeness_self = models.BooleanField(default=False)
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    outcome = models.CharField(max_length=16, choices=Outcome.choices, blank=True, default="")
    opened_at = models.DateTimeField(default=timezone.now)
    closed_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["subject_type", "subject_id"],
                condition=~Q(status="closed"),
                name="ticket_one_open_per_subject",
            )
        ]
        indexes = [
            models.Index(fields=["status", "-priority", "id"], name="ticket_queue_idx"),
            models.Index(fields=["subject_type", "subject_id"], name="ticket_subject_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.subject_type}:{self.subject_id} ({self.status})"


class Report(models.Model):
    """One person's report of one subject (a repeat by the same person returns this one)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    reporter = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="reports"
    )
    subject_type = models.CharField(max_length=16, choices=SubjectType.choices)
    subject_id = models.CharField(max_length=64)
    reason = models.CharField(max_length=32, choices=Reason.choices)
    details = models.TextField(blank=True)
    ticket = models.ForeignKey(Ticket, on_delete=models.PROTECT, related_name="reports")
    # The reporter was muted when filing: recorded, never queued.
    muted = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["reporter", "subject_type", "subject_id"], name="report_once_per_subject"
            )
        ]
        indexes = [models.Index(fields=["reporter", "-created_at", "-id"], name="report_mine_idx")]

    def __str__(self) -> str:
        return f"report {self.reason} on {self.subject_type}:{self.subject_id}"


class EventType(models.TextChoices):
    TAKEDOWN = "takedown"
    REVERSE_TAKEDOWN = "reverse_takedown"
    LABEL = "label"
    NOTE = "note"
    ACKNOWLEDGE = "acknowledge"
    ESCALATE = "escalate"
    STRIKE = "strike"
    SUSPEND = "suspend"
    BAN = "ban"
    UNBAN = "unban"
    REVOKE_CAMEO = "revoke_cameo"
    MUTE_REPORTER = "mute_reporter"
    RESOLVE_APPEAL = "resolve_appeal"


class ModerationEvent(models.Model):
    """One moderation action, insert-only (a trigger refuses UPDATE and DELETE, migration
    0002). `actor` is null for the system (an expired takedown)."""

    # Sequential on purpose: the order events are folded in (internal; the API shows public_id).
    id = models.BigAutoField(primary_key=True)
    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    subject_type = models.CharField(max_length=16, choices=SubjectType.choices)
    subject_id = models.CharField(max_length=64)
    type = models.CharField(max_length=24, choices=EventType.choices)
    reason = models.TextField(blank=True)
    # Who: the id stays when the account goes (DO_NOTHING, no constraint: the row can't be
    # updated), and the name is kept as it was.
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        related_name="+",
        db_constraint=False,
    )
    actor_name = models.CharField(max_length=30, blank=True)
    duration_hours = models.PositiveIntegerField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    label = models.CharField(max_length=64, blank=True)
    report_ids = models.JSONField(default=list, blank=True)
    external_id = models.CharField(max_length=200, null=True, blank=True, unique=True)
    # resolve_appeal: the event whose appeal was decided, and the decision.
    target = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    approved = models.BooleanField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [
            models.Index(fields=["subject_type", "subject_id", "id"], name="modevent_subject_idx"),
            models.Index(fields=["-created_at"], name="modevent_recent_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.type} {self.subject_type}:{self.subject_id}"


class SubjectStatus(models.Model):
    """What a subject's events add up to now (moderation.projection.project): rebuilt from the
    events on every new one, and checkable against them at any time."""

    subject_type = models.CharField(max_length=16, choices=SubjectType.choices)
    subject_id = models.CharField(max_length=64)
    taken_down = models.BooleanField(default=False)
    takedown_until = models.DateTimeField(null=True, blank=True)
    labels = models.JSONField(default=list, blank=True)
    escalated = models.BooleanField(default=False)
    # Users: strikes in force ([[event id, expires_at iso]]), suspension, ban, reporter mute.
    strikes = models.JSONField(default=list, blank=True)
    suspended_until = models.DateTimeField(null=True, blank=True)
    banned = models.BooleanField(default=False)
    muted = models.BooleanField(default=False)
    cameo_revoked = models.BooleanField(default=False)
    event_count = models.PositiveIntegerField(default=0)
    last_event = models.ForeignKey(
        ModerationEvent, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["subject_type", "subject_id"], name="subject_status_unique"
            )
        ]
        verbose_name_plural = "subject statuses"

    def __str__(self) -> str:
        return f"{self.subject_type}:{self.subject_id}"


class AppealStatus(models.TextChoices):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"


class Appeal(models.Model):
    """The actioned user's appeal of one event, once, within RIFF_APPEAL_WINDOW_DAYS."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    event = models.OneToOneField(ModerationEvent, on_delete=models.PROTECT, related_name="appeal")
    appellant = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="appeals"
    )
    text = models.TextField()
    status = models.CharField(
        max_length=16, choices=AppealStatus.choices, default=AppealStatus.PENDING
    )
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    decision = models.OneToOneField(
        ModerationEvent, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["status", "created_at"], name="appeal_queue_idx")]

    def __str__(self) -> str:
        return f"appeal of {self.event_id} ({self.status})"


# --- Safety rules ---------------------------------------------------------------------------
# Admission's prompt blocklist, public-figure protection and the output check's frame-hash
# blocklist (moderation.safety, docs/moderation-safety.md). Staff edit them in the admin.


class SafetyRule(models.Model):
    """A prompt rule applied at admission (moderation.checks.prompt_safety), editable by staff
    in the admin. Moved here from generation (same fields; migration 0003 copied the rows)."""

    class Kind(models.TextChoices):
        KEYWORD = "keyword"  # whole-word match after normalisation
        REGEX = "regex"

    name = models.CharField(max_length=100)
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.KEYWORD)
    pattern = models.CharField(max_length=300)
    message = models.CharField(max_length=200, default="This prompt is not allowed.")
    enabled = models.BooleanField(default=True)
    # Teens get stricter rules on top of everyone's.
    teens_only = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return self.name


class ProtectedFigure(models.Model):
    """A real person whose likeness may only be generated through their own cameo: a prompt or
    a cameo's instructions naming them (matched like IP aliases, rights.detection) is refused
    at admission unless the video uses `cameo` (moderation.safety.figure_refusal)."""

    name = models.CharField(max_length=100)
    # Other names and spellings matched like the name (nicknames, stage names).
    aliases = models.JSONField(default=list, blank=True)
    # The person's own cameo: using it is their consent. Null: nobody may generate them.
    cameo = models.ForeignKey(
        "cameos.Cameo", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    note = models.TextField(blank=True)  # for staff: who asked, evidence, ticket
    created_at = models.DateTimeField(default=timezone.now)
    # The matcher is rebuilt when the list changes (count + last change, like the catalogue).
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return self.name


class BlockedFrameHash(models.Model):
    """A 64-bit difference hash (dHash) of a known abusive frame: the default output check
    holds a generated video with a frame within RIFF_OUTPUT_HASH_DISTANCE bits of one."""

    # The 64 bits as a signed int64 (PostgreSQL has no unsigned bigint); moderation.safety
    # converts both ways.
    hash = models.BigIntegerField()
    label = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = "blocked frame hash"

    def __str__(self) -> str:
        return self.label or f"{self.hash & (2**64 - 1):016x}"

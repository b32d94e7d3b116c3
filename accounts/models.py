from __future__ import annotations

import time
import uuid
from datetime import date, datetime, timedelta
from datetime import time as dtime

from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.contrib.auth.models import PermissionsMixin
from django.db import models
from django.db.models import F, Q
from django.utils import timezone

from .names import name_key, normalize


class _StampedQuerySet(models.QuerySet):
    """`update()` that tells each web process's token cache which tokens it changed
    (accounts.authcache), so revocation and moderation, which write through `update()`, take
    effect on the next request. Updates of `stamp_free` fields alone (the token's touch) don't."""

    stamp_free: frozenset[str] = frozenset()

    def update(self, **kwargs):
        if not kwargs.keys() - self.stamp_free:
            return super().update(**kwargs)
        from .authcache import auth_changed

        changed = self._stamp_changes()
        count = super().update(**kwargs)
        if count:
            auth_changed(**changed)
        return count

    def _stamp_changes(self) -> dict:
        raise NotImplementedError


class UserQuerySet(_StampedQuerySet):
    def update(self, **kwargs):
        from .stamps import users_changed

        # Before the update: it may change what the filter matches (is_active=False).
        user_ids = list(self.values_list("pk", flat=True))
        count = super().update(**kwargs)
        if count:
            users_changed(user_ids)
        return count

    def _stamp_changes(self) -> dict:
        user_ids = list(self.values_list("pk", flat=True))
        return {"hashes_of_users": lambda: live_token_hashes(user_ids=user_ids)}


class AuthTokenQuerySet(_StampedQuerySet):
    stamp_free = frozenset({"last_used_at"})

    def _stamp_changes(self) -> dict:
        return {"key_hashes": list(self.values_list("key_hash", flat=True))}


def live_token_hashes(*, user_ids: list) -> list[str]:
    """The hashes of the unrevoked, unexpired tokens of these users."""
    if not user_ids:
        return []
    return list(
        AuthToken.objects.filter(
            user_id__in=user_ids, revoked_at__isnull=True, expires_at__gt=timezone.now()
        ).values_list("key_hash", flat=True)
    )


class UserManager(BaseUserManager["User"]):
    use_in_migrations = True

    def get_queryset(self) -> UserQuerySet:
        return UserQuerySet(self.model, using=self._db)

    def get_by_natural_key(self, username: str) -> User:
        return self.get(username_key=name_key(username))

    def create_user(
        self, username: str, email: str = "", password: str | None = None, **extra
    ) -> User:
        user = self.model(username=normalize(username), email=self.normalize_email(email), **extra)
        user.username_key = name_key(user.username)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_superuser(
        self, username: str, email: str = "", password: str | None = None, **extra
    ) -> User:
        extra.setdefault("is_staff", True)
        extra.setdefault("is_superuser", True)
        extra.setdefault("birth_date", date(1990, 1, 1))
        return self.create_user(username, email, password, **extra)


class User(AbstractBaseUser, PermissionsMixin):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # The stored (normalised) name is what people see; `username_key` is what must be unique,
    # so look-alike names cannot impersonate each other.
    username = models.CharField(max_length=30, unique=True)
    username_key = models.CharField(max_length=30, unique=True, editable=False)
    email = models.EmailField(blank=True)
    display_name = models.CharField(max_length=60, blank=True)
    bio = models.CharField(max_length=300, blank=True)
    birth_date = models.DateField(null=True)
    avatar_large = models.CharField(max_length=255, blank=True)
    avatar_small = models.CharField(max_length=255, blank=True)
    is_active = models.BooleanField(default=True)
    is_staff = models.BooleanField(default=False)
    # Moderation's suspension (accounts.services.user_suspend): until then the user may read
    # but not post, comment or generate. Past or null: not suspended.
    suspended_until = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    objects = UserManager()

    USERNAME_FIELD = "username"
    REQUIRED_FIELDS = ["email"]

    class Meta:
        indexes = [models.Index(fields=["created_at", "id"], name="user_created_idx")]

    def __str__(self) -> str:
        return self.username

    @property
    def is_suspended(self) -> bool:
        return self.suspended_until is not None and self.suspended_until > timezone.now()

    @property
    def is_teen(self) -> bool:
        """13–17 today. Computed from the birth date so it ends on the 18th birthday."""
        if self.birth_date is None:
            return False
        return age_on(self.birth_date, local_today()) < settings.RIFF_ADULT_AGE


def age_on(birth: date, today: date) -> int:
    return today.year - birth.year - ((today.month, today.day) < (birth.month, birth.day))


# (zone, today's date there, when the next day starts there as a time.time()).
_today: tuple = (None, date.min, float("-inf"))


def local_today() -> date:
    """`timezone.localdate()` in the default time zone (TIME_ZONE; Riff activates no other),
    worked out once a day: every feed page and `GET /me` asks (`is_teen`), and converting the
    time to a zone through the active-zone look-up was ~5 % of `GET /me` (docs/bench-feed.md).
    The day ends at the zone's next midnight (where a change of offset skips midnight, at the
    instant the new day starts); a changed TIME_ZONE is a new zone, worked out anew."""
    global _today
    zone = timezone.get_default_timezone()
    known, day, ends = _today
    if known is zone and time.time() < ends:
        return day
    day = timezone.localdate(timezone.now(), timezone=zone)
    ends = datetime.combine(day + timedelta(days=1), dtime.min, tzinfo=zone).timestamp()
    _today = (zone, day, ends)
    return day


class Invite(models.Model):
    code = models.CharField(max_length=32, unique=True)
    # Null for bootstrap codes minted by an operator (`manage.py mint_invites`).
    created_by = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.SET_NULL, related_name="invites_created"
    )
    used_by = models.OneToOneField(
        User, null=True, blank=True, on_delete=models.SET_NULL, related_name="invite_used"
    )
    used_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["created_by", "created_at"], name="invite_creator_idx")]

    def __str__(self) -> str:
        return self.code


class AuthToken(models.Model):
    """A bearer token. Only the SHA-256 of the secret is stored."""

    key_hash = models.CharField(max_length=64, unique=True)
    # The first characters of the token, to tell tokens apart in the admin.
    prefix = models.CharField(max_length=12)
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="tokens")
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    user_agent = models.CharField(max_length=200, blank=True)

    objects = AuthTokenQuerySet.as_manager()

    class Meta:
        indexes = [models.Index(fields=["user", "revoked_at"], name="token_user_idx")]

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.user_id})"


class ApiKey(models.Model):
    """A key for the Videos API at /v1/ (accounts.apikeys): `rk_` + 43 random characters.

    Only the SHA-256 of the whole key is stored. Revoked keys keep their row (the admin and
    the owner's history show when a key was last used); the list and the lookup skip them."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100)
    # The first 12 characters ("rk_" and 9 of the secret), so owners can tell keys apart.
    prefix = models.CharField(max_length=12)
    key_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            # The owner's list (newest first) and the per-user cap count.
            models.Index(
                fields=["user", "-created_at", "-id"],
                condition=Q(revoked_at__isnull=True),
                name="apikey_user_live_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.name})"


class Follow(models.Model):
    follower = models.ForeignKey(User, on_delete=models.CASCADE, related_name="following_set")
    followee = models.ForeignKey(User, on_delete=models.CASCADE, related_name="follower_set")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["follower", "followee"], name="follow_unique"),
            models.CheckConstraint(condition=~Q(follower=F("followee")), name="follow_not_self"),
        ]
        indexes = [
            # The follower / following lists page by (created_at, the other user's id).
            models.Index(
                fields=["followee", "-created_at", "-follower"], name="follow_followee_page_idx"
            ),
            models.Index(
                fields=["follower", "-created_at", "-followee"], name="follow_follower_page_idx"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.follower_id} -> {self.followee_id}"


class Block(models.Model):
    blocker = models.ForeignKey(User, on_delete=models.CASCADE, related_name="blocking_set")
    blocked = models.ForeignKey(User, on_delete=models.CASCADE, related_name="blocked_by_set")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["blocker", "blocked"], name="block_unique"),
            models.CheckConstraint(condition=~Q(blocker=F("blocked")), name="block_not_self"),
        ]
        indexes = [models.Index(fields=["blocked", "blocker"], name="block_reverse_idx")]

    def __str__(self) -> str:
        return f"{self.blocker_id} blocks {self.blocked_id}"


class Notification(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    recipient = models.ForeignKey(User, on_delete=models.CASCADE, related_name="notifications")
    # e.g. "follow", "cameo.access_requested", "cameo.appearance", "generation.succeeded".
    kind = models.CharField(max_length=64)
    actor = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.CASCADE, related_name="notifications_caused"
    )
    data = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    read_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["recipient", "-created_at", "-id"], name="notif_recipient_idx"),
            models.Index(
                fields=["recipient"], condition=Q(read_at__isnull=True), name="notif_unread_idx"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} for {self.recipient_id}"


class IdempotencyRecord(models.Model):
    """A remembered response to a POST sent with `Idempotency-Key` (API.md "Idempotency")."""

    class State(models.TextChoices):
        IN_FLIGHT = "in_flight"
        DONE = "done"

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    # SHA-256 of method, path and canonical body: the same key with another body is refused.
    fingerprint = models.CharField(max_length=64)
    state = models.CharField(max_length=16, choices=State.choices, default=State.IN_FLIGHT)
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    response_body = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "key"], name="idempotency_unique")]

    def __str__(self) -> str:
        return f"{self.user_id}:{self.key} ({self.state})"

"""Writes for accounts: sign-up, profile, invites, follows, blocks, notifications, deletion."""

from __future__ import annotations

import io
import secrets
import uuid
import warnings
from datetime import UTC, date, datetime
from typing import Any

from django.conf import settings
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction
from django.utils import timezone
from PIL import Image, ImageOps, UnidentifiedImageError

from config.core import hooks
from config.core.errors import ApiError, Forbidden, Invalid, TooLarge, UnsupportedMedia

from .hooks import ACCOUNT_DELETED, USER_BLOCKED
from .models import Block, Follow, Invite, Notification, User, age_on
from .names import name_key, normalize, validate_name
from .realtime import send_to_user
from .stamps import graph_changed
from .tokens import token_revoke_all

INVITE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I


# --- invites ----------------------------------------------------------------------------------


def new_invite_code() -> str:
    return "-".join("".join(secrets.choice(INVITE_ALPHABET) for _ in range(4)) for _ in range(3))


@transaction.atomic
def invite_mint(*, created_by: User | None) -> Invite:
    """Mints one invite. Users have a lifetime allowance; operators (created_by=None) don't."""
    if created_by is not None:
        # Lock the user row so two concurrent mints can't both pass the allowance check.
        User.objects.select_for_update().filter(pk=created_by.pk).first()
        if Invite.objects.filter(created_by=created_by).count() >= settings.RIFF_INVITES_PER_USER:
            raise Forbidden(
                f"You have used all {settings.RIFF_INVITES_PER_USER} of your invites.",
                code="invite_limit_reached",
            )
    return Invite.objects.create(code=new_invite_code(), created_by=created_by)


# --- sign-up ----------------------------------------------------------------------------------


def _clean_invite_code(code: str) -> str:
    return normalize(code).upper().replace(" ", "")


@transaction.atomic
def user_register(
    *, username: str, email: str, password: str, invite_code: str, birth_date: date
) -> User:
    """Creates a user and consumes the invite, atomically: a used invite never yields two users."""
    errors: dict[str, list[str]] = {}
    username_error = validate_name(username)
    if username_error:
        errors["username"] = [username_error]
    today = timezone.localdate()
    if birth_date > today:
        errors["birth_date"] = ["Birth date is in the future."]
    elif age_on(birth_date, today) < settings.RIFF_MIN_AGE:
        raise Invalid(
            f"You must be at least {settings.RIFF_MIN_AGE} to use Riff.",
            code="too_young",
            fields={"birth_date": [f"You must be at least {settings.RIFF_MIN_AGE}."]},
        )
    if not errors.get("username"):
        candidate = User(username=normalize(username), email=email)
        try:
            validate_password(password, user=candidate)
        except DjangoValidationError as exc:
            errors["password"] = list(exc.messages)
    if errors:
        raise Invalid(next(iter(errors.values()))[0], fields=errors)

    invite = (
        Invite.objects.select_for_update()
        .filter(code=_clean_invite_code(invite_code), used_by__isnull=True)
        .first()
    )
    if invite is None:
        raise Invalid(
            "This invite code is not valid or was already used.",
            code="invalid_invite",
            fields={"invite_code": ["Invalid or used invite code."]},
        )
    if User.objects.filter(username_key=name_key(username)).exists():
        raise Invalid(
            "This username is taken.",
            code="username_taken",
            fields={"username": ["This username is taken."]},
        )
    try:
        with transaction.atomic():
            user = User.objects.create_user(
                username=username, email=email, password=password, birth_date=birth_date
            )
    except IntegrityError:
        # Lost a race with a concurrent sign-up for the same name.
        raise Invalid(
            "This username is taken.",
            code="username_taken",
            fields={"username": ["This username is taken."]},
        )
    invite.used_by = user
    invite.used_at = timezone.now()
    invite.save(update_fields=["used_by", "used_at"])
    if invite.created_by_id:
        # Whoever invited you is the first person you follow, and they follow you back.
        Follow.objects.bulk_create(
            [
                Follow(follower=user, followee_id=invite.created_by_id),
                Follow(follower_id=invite.created_by_id, followee=user),
            ],
            ignore_conflicts=True,
        )
        graph_changed(user.pk, invite.created_by_id)
    return user


# --- profile ----------------------------------------------------------------------------------


@transaction.atomic
def user_update(*, user: User, data: dict[str, Any]) -> User:
    fields = [name for name in ("display_name", "bio") if name in data]
    for name in fields:
        setattr(user, name, data[name])
    if fields:
        user.save(update_fields=fields)
    return user


ALLOWED_AVATAR_FORMATS = {"JPEG", "PNG", "WEBP", "GIF"}


def _decode_avatar(content: bytes) -> Image.Image:
    """Decodes and fully loads an uploaded image, refusing bombs and unknown formats."""
    with warnings.catch_warnings():
        # Pillow only *warns* between MAX_IMAGE_PIXELS and twice that; treat it as the error.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(content))
            if image.format not in ALLOWED_AVATAR_FORMATS:
                raise UnsupportedMedia(
                    "Avatars must be JPEG, PNG, WebP or GIF images.", code="unsupported_media"
                )
            width, height = image.size
            if width * height > settings.RIFF_AVATAR_MAX_PIXELS:
                raise TooLarge("The image has too many pixels.", code="too_large")
            image.load()
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise TooLarge("The image has too many pixels.", code="too_large")
        except UnidentifiedImageError:
            raise UnsupportedMedia(
                "This file is not an image we can read.", code="unsupported_media"
            )
        except ApiError:
            raise
        except (OSError, SyntaxError, ValueError) as exc:
            raise Invalid(f"The image is damaged ({exc.__class__.__name__}).", code="invalid_media")
    return image


def _square_variant(image: Image.Image, size: int) -> bytes:
    square = ImageOps.fit(image, (size, size), method=Image.Resampling.LANCZOS)
    out = io.BytesIO()
    # Re-encoding from pixels drops EXIF, GPS and every other piece of metadata.
    square.save(out, format="JPEG", quality=88, optimize=True, progressive=True)
    return out.getvalue()


def user_set_avatar(*, user: User, content: bytes) -> User:
    """Stores square JPEG variants of an uploaded image; the original is never kept."""
    if len(content) > settings.RIFF_AVATAR_MAX_BYTES:
        raise TooLarge("The image is too large.", code="too_large")
    if not content:
        raise Invalid(
            "The image is empty.", code="invalid_media", fields={"image": ["Empty file."]}
        )
    image = _decode_avatar(content)
    # Phones store the camera orientation in EXIF; apply it before it is stripped.
    image = ImageOps.exif_transpose(image).convert("RGB")
    stamp = uuid.uuid4().hex[:12]
    large_size, small_size = settings.RIFF_AVATAR_SIZES
    written: list[str] = []
    try:
        for size in (large_size, small_size):
            name = default_storage.save(
                f"avatars/{user.pk}/{stamp}-{size}.jpg", ContentFile(_square_variant(image, size))
            )
            written.append(name)
        old = [user.avatar_large, user.avatar_small]
        with transaction.atomic():
            user.avatar_large, user.avatar_small = written
            user.save(update_fields=["avatar_large", "avatar_small"])
    except BaseException:
        for name in written:
            default_storage.delete(name)
        raise
    for name in old:
        if name:
            transaction.on_commit(lambda name=name: default_storage.delete(name))
    return user


def user_delete(*, user: User) -> None:
    """Deletes an account and everything it owns.

    Each upper layer implements the `account.deleted` hook (revoke cameos, remove
    appearances and posts, ...); they run first, inside the same transaction, then the user row
    goes and database cascades take the rest. Stored files are deleted after commit.
    """
    files = [name for name in (user.avatar_large, user.avatar_small) if name]
    with transaction.atomic():
        hooks.run(ACCOUNT_DELETED.name, user=user)
        Invite.objects.filter(used_by=user).update(used_by=None)
        # The token rows go with the user; this also closes the user's open websockets.
        token_revoke_all(user=user)
        user.delete()
    for name in files:
        default_storage.delete(name)


# --- suspension (moderation calls these; a ban is is_active=False plus token revocation) ----


def user_suspension_check(*, user: User) -> None:
    """Refuses a write a suspended user may not make (posting, commenting, generating,
    remixing) with 403 `account_suspended`, saying until when. Reads are never refused. Call it
    with a row read in this request (generation admission passes its locked row)."""
    until = user.suspended_until
    if until is not None and until > timezone.now():
        stamp = until.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        raise Forbidden(
            f"Your account is suspended until {stamp}; until then you can't post, comment, "
            "generate or remix.",
            code="account_suspended",
        )


@transaction.atomic
def user_suspend(*, user: User, until: datetime) -> User:
    """Suspends `user` until `until` (an aware datetime in the future; 400 `invalid`
    otherwise). Suspending again sets the new end, earlier or later: the last decision wins.
    The suspension ends by itself at `until`; nothing has to run then."""
    if timezone.is_naive(until):
        raise Invalid("The end of a suspension needs a time zone.", fields={"until": ["Naive."]})
    if until <= timezone.now():
        raise Invalid("A suspension must end in the future.", fields={"until": ["In the past."]})
    locked = User.objects.select_for_update().get(pk=user.pk)
    locked.suspended_until = until
    locked.save(update_fields=["suspended_until"])
    user.suspended_until = until
    return locked


@transaction.atomic
def user_unsuspend(*, user: User) -> User:
    """Lifts a suspension now (an appeal approved). Idempotent."""
    locked = User.objects.select_for_update().get(pk=user.pk)
    if locked.suspended_until is not None:
        locked.suspended_until = None
        locked.save(update_fields=["suspended_until"])
    user.suspended_until = None
    return locked


# --- follows and blocks -----------------------------------------------------------------------


def is_blocked_between(a: User, b: User) -> bool:
    return (
        Block.objects.filter(blocker=a, blocked=b).exists()
        or Block.objects.filter(blocker=b, blocked=a).exists()
    )


@transaction.atomic
def follow_create(*, follower: User, followee: User) -> bool:
    """Idempotent. Returns True when a new follow was made."""
    if follower.pk == followee.pk:
        raise Invalid("You cannot follow yourself.", code="cannot_follow_self")
    if is_blocked_between(follower, followee):
        # Either side blocking hides the profile: answer as if it didn't exist.
        raise Forbidden("You cannot follow this user.", code="blocked")
    _, created = Follow.objects.get_or_create(follower=follower, followee=followee)
    if created:
        graph_changed(follower.pk)
        notification_create(recipient=followee, kind="follow", actor=follower)
    return created


@transaction.atomic
def follow_delete(*, follower: User, followee: User) -> bool:
    deleted, _ = Follow.objects.filter(follower=follower, followee=followee).delete()
    if deleted:
        graph_changed(follower.pk)
    return bool(deleted)


@transaction.atomic
def block_create(*, blocker: User, blocked: User) -> bool:
    """Blocks `blocked`: removes follows both ways; upper layers void cameo access via hooks."""
    if blocker.pk == blocked.pk:
        raise Invalid("You cannot block yourself.", code="cannot_block_self")
    _, created = Block.objects.get_or_create(blocker=blocker, blocked=blocked)
    Follow.objects.filter(follower=blocker, followee=blocked).delete()
    Follow.objects.filter(follower=blocked, followee=blocker).delete()
    graph_changed(blocker.pk, blocked.pk)
    hooks.run(USER_BLOCKED.name, blocker=blocker, blocked=blocked)
    return created


@transaction.atomic
def block_delete(*, blocker: User, blocked: User) -> bool:
    deleted, _ = Block.objects.filter(blocker=blocker, blocked=blocked).delete()
    if deleted:
        graph_changed(blocker.pk, blocked.pk)
    return bool(deleted)


# --- notifications ----------------------------------------------------------------------------


def notification_create(
    *, recipient: User, kind: str, actor: User | None = None, data: dict[str, Any] | None = None
) -> Notification | None:
    """The one way to notify someone: stores the row and pushes it over the websocket.

    Nothing is sent to a recipient who blocked the actor (or was blocked by them).
    """
    if actor is not None and actor.pk != recipient.pk and is_blocked_between(recipient, actor):
        return None
    notification = Notification.objects.create(
        recipient=recipient, kind=kind, actor=actor, data=data or {}
    )
    from .serializers import NotificationOut  # serializers import services' models only

    send_to_user(
        recipient.pk, {"type": "notification", "notification": NotificationOut(notification).data}
    )
    return notification


def notifications_mark_read(*, user: User, ids: list[uuid.UUID] | None) -> int:
    qs = Notification.objects.filter(recipient=user, read_at__isnull=True)
    if ids is not None:
        qs = qs.filter(pk__in=ids)
    return qs.update(read_at=timezone.now())

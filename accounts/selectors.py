"""Reads for accounts. Visibility (blocks) is applied here, never in views."""

from __future__ import annotations

from django.db.models import Count, Exists, OuterRef, QuerySet

from config.core.compiled import CompiledQuery
from config.core.errors import NotFound

from .models import Block, Follow, Invite, Notification, User
from .names import name_key

# Both directions in one statement, compiled once per process (config.core.compiled): every
# feed page that reads the database, each ranking and each profile view asks.
_BLOCKED = CompiledQuery(
    lambda me: (
        Block.objects.filter(blocker_id=me)
        .values_list("blocked_id")
        .union(Block.objects.filter(blocked_id=me).values_list("blocker_id"), all=True)
    ),
    me="uuid",
)


def blocked_user_ids(user: User) -> set:
    """Everyone `user` blocked or was blocked by: hidden from them both ways."""
    if not user.is_authenticated:
        return set()
    return {row[0] for row in _BLOCKED.rows(me=user.pk)}


def user_by_username(username: str) -> User:
    user = User.objects.filter(username_key=name_key(username), is_active=True).first()
    if user is None:
        raise NotFound("No such user.")
    return user


def user_visible_to(*, viewer: User, username: str) -> User:
    """The profile, or 404 when it doesn't exist or a block stands between them."""
    user = user_by_username(username)
    if viewer.is_authenticated and user.pk != viewer.pk and user.pk in blocked_user_ids(viewer):
        raise NotFound("No such user.")
    return user


def user_with_relationship(*, viewer: User, user: User) -> User:
    """Annotates counts and the viewer's relationship onto `user` (one query)."""
    qs = User.objects.filter(pk=user.pk).annotate(
        followers_count=Count("follower_set", distinct=True),
        following_count=Count("following_set", distinct=True),
        is_following=Exists(Follow.objects.filter(follower_id=viewer.pk, followee=OuterRef("pk"))),
        follows_me=Exists(Follow.objects.filter(follower=OuterRef("pk"), followee_id=viewer.pk)),
    )
    return qs.get()


def followers_of(*, user: User, viewer: User) -> QuerySet[Follow]:
    return (
        Follow.objects.filter(followee=user, follower__is_active=True)
        .exclude(follower_id__in=blocked_user_ids(viewer))
        .select_related("follower")
    )


def following_of(*, user: User, viewer: User) -> QuerySet[Follow]:
    return (
        Follow.objects.filter(follower=user, followee__is_active=True)
        .exclude(followee_id__in=blocked_user_ids(viewer))
        .select_related("followee")
    )


def is_mutual(a: User, b: User) -> bool:
    return (
        Follow.objects.filter(follower=a, followee=b).exists()
        and Follow.objects.filter(follower=b, followee=a).exists()
    )


def invites_of(*, user: User) -> QuerySet[Invite]:
    return Invite.objects.filter(created_by=user).select_related("used_by")


def notifications_of(*, user: User) -> QuerySet[Notification]:
    return (
        Notification.objects.filter(recipient=user)
        .exclude(actor_id__in=blocked_user_ids(user))
        .select_related("actor")
    )

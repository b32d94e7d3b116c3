"""The one place that decides whether someone may put a cameo in a video.

`cameo_can_use(user, cameo)` answers for one cameo; `usable_cameos(user)` lists every cameo the
user may use. Both evaluate the same SQL rule (`consent_reason`), so the single answer and the
list can never disagree, and the list costs one query however many cameos there are.

The rule, first match wins:
  not active (or owner deactivated)  -> deny  "not_active"
  the owner                          -> allow "owner"
  a block either way with the owner  -> deny  "blocked"
  audience only_me                   -> deny  "only_me"
  an explicit grant                  -> allow "granted"
  audience everyone                  -> allow "everyone"
  audience mutuals and mutual follow -> allow "mutual"
  otherwise                          -> deny  "not_in_audience"
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Case, CharField, Exists, OuterRef, Q, QuerySet, Value, When

from accounts.models import Block, Follow

from .models import Audience, Cameo, CameoGrant, CameoStatus

ALLOW_REASONS = frozenset({"owner", "granted", "everyone", "mutual"})


@dataclass(frozen=True)
class ConsentDecision:
    allowed: bool
    reason: str

    def __bool__(self) -> bool:
        return self.allowed


def consent_reason(user) -> Case:
    """The rule above as one SQL expression over Cameo rows, for an authenticated `user`."""
    blocked = Exists(
        Block.objects.filter(
            Q(blocker_id=OuterRef("owner_id"), blocked_id=user.pk)
            | Q(blocker_id=user.pk, blocked_id=OuterRef("owner_id"))
        )
    )
    granted = Exists(CameoGrant.objects.filter(cameo_id=OuterRef("pk"), user_id=user.pk))
    follows_owner = Exists(
        Follow.objects.filter(follower_id=user.pk, followee_id=OuterRef("owner_id"))
    )
    followed_by_owner = Exists(
        Follow.objects.filter(follower_id=OuterRef("owner_id"), followee_id=user.pk)
    )
    return Case(
        When(~Q(status=CameoStatus.ACTIVE) | Q(owner__is_active=False), then=Value("not_active")),
        When(owner_id=user.pk, then=Value("owner")),
        When(blocked, then=Value("blocked")),
        When(audience=Audience.ONLY_ME, then=Value("only_me")),
        When(granted, then=Value("granted")),
        When(audience=Audience.EVERYONE, then=Value("everyone")),
        When(
            Q(audience=Audience.MUTUALS) & follows_owner & followed_by_owner, then=Value("mutual")
        ),
        default=Value("not_in_audience"),
        output_field=CharField(),
    )


def cameo_can_use(user, cameo: Cameo) -> ConsentDecision:
    """May `user` put `cameo` in a video right now? Called at admission, before sampling and at
    publish; the answer is read fresh from the database every time."""
    if user is None or not getattr(user, "is_authenticated", False):
        return ConsentDecision(False, "anonymous")
    reason = (
        Cameo.objects.filter(pk=cameo.pk)
        .annotate(consent_reason=consent_reason(user))
        .values_list("consent_reason", flat=True)
        .first()
    )
    if reason is None:
        return ConsentDecision(False, "not_found")
    return ConsentDecision(reason in ALLOW_REASONS, reason)


def usable_cameos(user) -> QuerySet[Cameo]:
    """Every cameo `user` may use, annotated with `consent_reason`."""
    if user is None or not getattr(user, "is_authenticated", False):
        return Cameo.objects.none()
    return (
        Cameo.objects.annotate(consent_reason=consent_reason(user))
        .filter(consent_reason__in=ALLOW_REASONS)
        .select_related("owner")
    )

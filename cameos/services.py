"""Writes for cameos: creation, recording + verification, audience, grants, access requests."""

from __future__ import annotations

import secrets
import uuid
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import User
from accounts.names import name_key, normalize, validate_name
from accounts.services import is_blocked_between, notification_create
from config.core import hooks
from config.core.errors import Conflict, Forbidden, Invalid
from config.core.redis import enqueue_after_commit
from config.core.states import StateMachine

from .consent import cameo_can_use
from .hooks import CAMEO_CONSENT_WITHDRAWN, CAMEO_REVOKED
from .models import (
    AccessRequest,
    AccessRequestStatus,
    Audience,
    Cameo,
    CameoEvent,
    CameoGrant,
    CameoInstructions,
    CameoKind,
    CameoStatus,
)
from .recording import RecordingInfo

S = CameoStatus
R = AccessRequestStatus
# The only status changes there are. Everything else is refused.
CAMEO_STATES = StateMachine(
    "cameo",
    {
        S.AWAITING_RECORDING: {S.VERIFYING, S.REVOKED},
        S.VERIFYING: {S.ACTIVE, S.REJECTED, S.NEEDS_REVIEW, S.REVOKED},
        S.NEEDS_REVIEW: {S.ACTIVE, S.REJECTED, S.REVOKED},
        S.REJECTED: {S.VERIFYING, S.REVOKED},
        S.ACTIVE: {S.REVOKED},
        S.REVOKED: set(),
    },
)
ACCESS_REQUEST_STATES = StateMachine(
    "access request",
    {
        R.PENDING: {R.APPROVED, R.DENIED, R.CANCELLED},
        R.APPROVED: set(),
        R.DENIED: set(),
        R.CANCELLED: set(),
    },
)

HEAD_TURNS = ("left", "right", "up", "down")


def new_challenge() -> dict[str, Any]:
    turns = [secrets.choice(HEAD_TURNS) for _ in range(2)]
    expires = timezone.now() + timedelta(seconds=settings.RIFF_CAMEO_CHALLENGE_TTL)
    return {
        "digits": "".join(secrets.choice("0123456789") for _ in range(4)),
        "head_turns": turns,
        "text": "Look at the camera, say the digits out loud, then turn your head "
        + " and ".join(turns)
        + ".",
        "expires_at": expires.isoformat(),
    }


def _challenge_expired(cameo: Cameo) -> bool:
    expires = cameo.challenge.get("expires_at")
    return bool(expires) and timezone.datetime.fromisoformat(expires) < timezone.now()


def _validate_handle(handle: str, *, owner: User) -> str:
    error = validate_name(handle, min_length=3, max_length=30)
    if error:
        raise Invalid(error, fields={"handle": [error]})
    key = name_key(handle)
    if Cameo.objects.filter(handle_key=key).exists():
        raise Invalid("This handle is taken.", code="handle_taken", fields={"handle": ["Taken."]})
    # A handle may not pass for someone else's username (@bob must be bob's).
    if User.objects.filter(username_key=key).exclude(pk=owner.pk).exists():
        raise Invalid(
            "This handle belongs to another user.",
            code="handle_taken",
            fields={"handle": ["Belongs to another user."]},
        )
    return normalize(handle)


def _default_handle(owner: User, kind: str) -> str:
    base = owner.username if kind == CameoKind.PERSON else f"{owner.username}.{kind}"
    candidate = base[:30]
    for _ in range(20):
        if not Cameo.objects.filter(handle_key=name_key(candidate)).exists():
            return candidate
        candidate = f"{base[:24]}.{secrets.randbelow(10**5):05d}"
    return f"cameo.{uuid.uuid4().hex[:12]}"


@transaction.atomic
def cameo_create(*, owner: User, kind: str, display_name: str, handle: str | None = None) -> Cameo:
    if (
        kind == CameoKind.PERSON
        and Cameo.objects.filter(owner=owner, kind=CameoKind.PERSON)
        .exclude(status=S.REVOKED)
        .exists()
    ):
        # One likeness per person: a second "person" cameo would let anyone pose as two people.
        raise Conflict("You already have a person cameo.", code="person_cameo_exists")
    handle_value = _validate_handle(handle, owner=owner) if handle else _default_handle(owner, kind)
    cameo = Cameo(
        owner=owner,
        kind=kind,
        display_name=display_name,
        handle=handle_value,
        handle_key=name_key(handle_value),
        audience=Audience.ONLY_ME if owner.is_teen else Audience.APPROVED,
        challenge=new_challenge(),
    )
    try:
        with transaction.atomic():
            cameo.save()
    except IntegrityError:
        raise Invalid("This handle is taken.", code="handle_taken", fields={"handle": ["Taken."]})
    CameoInstructions.objects.create(cameo=cameo, version=1)
    return cameo


@transaction.atomic
def cameo_transition(
    *, cameo: Cameo, to: str, actor: User | None = None, reason: str = ""
) -> Cameo:
    """The only way a cameo's status changes. Locks the row; writes the audit event."""
    locked = Cameo.objects.select_for_update().get(pk=cameo.pk)
    CAMEO_STATES.check(locked.status, to)
    CameoEvent.objects.create(
        cameo=locked, from_status=locked.status, to_status=to, actor=actor, reason=reason[:200]
    )
    locked.status = to
    locked.status_reason = reason[:200]
    fields = ["status", "status_reason", "updated_at"]
    if to in LIKENESS_DROPPED and (locked.recording or locked.reference_frames):
        _drop_likeness_files(locked)
        fields += ["recording", "reference_frames"]
    locked.save(update_fields=fields)
    cameo.status, cameo.status_reason = locked.status, locked.status_reason
    cameo.recording, cameo.reference_frames = locked.recording, locked.reference_frames
    if to == S.REVOKED:
        _on_revoked(locked)
    elif to in (S.ACTIVE, S.REJECTED, S.NEEDS_REVIEW) and actor != locked.owner:
        notification_create(
            recipient=locked.owner,
            kind=f"cameo.{to}",
            data={"cameo_id": str(locked.pk), "reason": reason[:200]},
        )
    return locked


# A rejected recording is of no further use, and a revoked likeness must not outlive consent:
# the recording and the reference frames taken from it are deleted (after commit) the moment
# a cameo enters either state. Retention window: none (docs/operations.md, "Retention").
LIKENESS_DROPPED = {S.REJECTED, S.REVOKED}


def _drop_likeness_files(cameo: Cameo) -> None:
    names = [name for name in (cameo.recording, *cameo.reference_frames) if name]
    cameo.recording, cameo.reference_frames = "", []

    def delete() -> None:
        for name in names:
            default_storage.delete(name)

    transaction.on_commit(delete)


def _on_revoked(cameo: Cameo) -> None:
    ACCESS_REQUEST_STATES.bulk(
        AccessRequest.objects.filter(cameo=cameo), R.CANCELLED, decided_at=timezone.now()
    )
    # Upper layers (generation: cancel queued/running jobs that use it) hook in here.
    hooks.run(CAMEO_REVOKED.name, cameo=cameo)


def cameo_submit_recording(*, cameo: Cameo, data: bytes, info: RecordingInfo) -> Cameo:
    """Stores a probed recording and starts verification (after commit)."""
    if cameo.status not in (S.AWAITING_RECORDING, S.REJECTED):
        raise Conflict("This cameo is not waiting for a recording.", code="invalid_transition")
    if cameo.kind == CameoKind.PERSON and _challenge_expired(cameo):
        # Rotate so the client can read a fresh challenge and record again.
        Cameo.objects.filter(pk=cameo.pk).update(challenge=new_challenge())
        raise Conflict(
            "The challenge expired; record again with the new one.", code="challenge_expired"
        )
    name = default_storage.save(
        f"cameos/{cameo.pk}/recording-{uuid.uuid4().hex[:10]}.{info.extension}", ContentFile(data)
    )
    old = cameo.recording
    try:
        with transaction.atomic():
            Cameo.objects.filter(pk=cameo.pk).update(recording=name, recording_info=info.as_dict())
            cameo.recording, cameo.recording_info = name, info.as_dict()
            cameo = cameo_transition(cameo=cameo, to=S.VERIFYING, actor=cameo.owner)
            from .tasks import cameo_verify

            cameo_id = str(cameo.pk)
            # cameos.tasks.cameo_verify_sweep re-sends it if the broker is down.
            enqueue_after_commit(cameo_verify, cameo_id, component="cameo_verify")
    except BaseException:
        default_storage.delete(name)
        raise
    if old:
        transaction.on_commit(lambda: default_storage.delete(old))
    return cameo


def cameo_record_verification(*, cameo: Cameo, analysis, reference_names: list[str]) -> Cameo:
    """Ends verification from the automatic checks' analysis (called by the task)."""
    result = {
        "frames": analysis.frames,
        "decoded_seconds": round(analysis.decoded_seconds, 3),
        "audio_rms": None if analysis.audio_rms is None else round(analysis.audio_rms, 6),
        "brightness_std": round(analysis.brightness_std, 3),
        "motion": round(analysis.motion, 4),
        "problems": analysis.problems,
        "borderline": analysis.borderline,
        "checked_at": timezone.now().isoformat(),
    }
    with transaction.atomic():
        Cameo.objects.filter(pk=cameo.pk).update(
            verification=result, reference_frames=reference_names
        )
        if analysis.problems:
            return cameo_transition(
                cameo=cameo,
                to=S.REJECTED,
                reason="automatic checks: " + ", ".join(analysis.problems),
            )
        policy = settings.RIFF_CAMEO_REVIEW_POLICY
        needs_human = (
            policy == "always" or cameo.kind == CameoKind.CHARACTER or bool(analysis.borderline)
        )
        if needs_human:
            reason = ", ".join(analysis.borderline) or "policy: human review"
            return cameo_transition(cameo=cameo, to=S.NEEDS_REVIEW, reason=reason)
        return cameo_transition(cameo=cameo, to=S.ACTIVE, reason="automatic checks passed")


@transaction.atomic
def cameo_update(*, cameo: Cameo, data: dict[str, Any]) -> Cameo:
    cameo = Cameo.objects.select_for_update().get(pk=cameo.pk)
    if cameo.status == S.REVOKED:
        raise Conflict("This cameo was revoked.", code="cameo_revoked")
    audience = data.get("audience")
    if audience == Audience.EVERYONE and cameo.owner.is_teen:
        raise Invalid(
            "Teens' cameos can't be open to everyone.",
            code="audience_not_allowed",
            fields={"audience": ["Not available for teen accounts."]},
        )
    fields = []
    for name in ("audience", "display_name", "monetization_enabled"):
        if name in data and getattr(cameo, name) != data[name]:
            setattr(cameo, name, data[name])
            fields.append(name)
    text_changed = any(
        name in data and getattr(cameo, name) != data[name]
        for name in ("instructions", "restrictions")
    )
    if text_changed:
        cameo.instructions = data.get("instructions", cameo.instructions)
        cameo.restrictions = data.get("restrictions", cameo.restrictions)
        cameo.instructions_version += 1
        CameoInstructions.objects.create(
            cameo=cameo,
            version=cameo.instructions_version,
            instructions=cameo.instructions,
            restrictions=cameo.restrictions,
        )
        fields += ["instructions", "restrictions", "instructions_version"]
    if fields:
        cameo.save(update_fields=[*fields, "updated_at"])
    return cameo


def cameo_revoke(*, cameo: Cameo, actor: User, reason: str = "revoked by owner") -> Cameo:
    if cameo.status == S.REVOKED:
        return cameo
    return cameo_transition(cameo=cameo, to=S.REVOKED, actor=actor, reason=reason)


# --- grants and access requests -----------------------------------------------------------


@transaction.atomic
def cameo_grant(*, cameo: Cameo, user: User, granted_by: User) -> CameoGrant:
    if user.pk == cameo.owner_id:
        raise Invalid("You always may use your own cameo.", code="cannot_grant_self")
    if is_blocked_between(cameo.owner, user):
        raise Forbidden("You can't grant a user you blocked or who blocked you.", code="blocked")
    grant, created = CameoGrant.objects.get_or_create(
        cameo=cameo, user=user, defaults={"granted_by": granted_by}
    )
    if created:
        ACCESS_REQUEST_STATES.bulk(
            AccessRequest.objects.filter(cameo=cameo, requester=user),
            R.APPROVED,
            decided_at=timezone.now(),
        )
        notification_create(
            recipient=user,
            kind="cameo.granted",
            actor=granted_by,
            data={"cameo_id": str(cameo.pk), "handle": cameo.handle},
        )
    return grant


@transaction.atomic
def cameo_ungrant(*, cameo: Cameo, user: User) -> bool:
    deleted, _ = CameoGrant.objects.filter(cameo=cameo, user=user).delete()
    if deleted:
        hooks.run(CAMEO_CONSENT_WITHDRAWN.name, cameo=cameo, user=user)
    return bool(deleted)


@transaction.atomic
def access_request_create(*, cameo: Cameo, requester: User, message: str = "") -> AccessRequest:
    if cameo.status != S.ACTIVE:
        raise Conflict("This cameo is not active.", code="cameo_not_active")
    decision = cameo_can_use(requester, cameo)
    if decision.allowed:
        raise Conflict("You can already use this cameo.", code="already_allowed")
    if decision.reason in ("blocked", "only_me"):
        raise Forbidden("This cameo does not take requests.", code="permission_denied")
    try:
        with transaction.atomic():
            request = AccessRequest.objects.create(
                cameo=cameo, requester=requester, message=message
            )
    except IntegrityError:
        raise Conflict("You already asked; the owner hasn't answered yet.", code="request_pending")
    notification_create(
        recipient=cameo.owner,
        kind="cameo.access_requested",
        actor=requester,
        data={"cameo_id": str(cameo.pk), "request_id": str(request.pk), "message": message},
    )
    return request


@transaction.atomic
def access_request_transition(*, request: AccessRequest, to: str, actor: User) -> AccessRequest:
    """The only way an access request's status changes; approving grants the cameo."""
    locked = (
        AccessRequest.objects.select_for_update()
        .select_related("cameo", "requester")
        .get(pk=request.pk)
    )
    ACCESS_REQUEST_STATES.check(locked.status, to)
    locked.status = to
    locked.decided_at = timezone.now()
    locked.save(update_fields=["status", "decided_at"])
    if to == AccessRequestStatus.APPROVED:
        cameo_grant(cameo=locked.cameo, user=locked.requester, granted_by=actor)
    elif to == AccessRequestStatus.DENIED:
        notification_create(
            recipient=locked.requester,
            kind="cameo.access_denied",
            actor=actor,
            data={"cameo_id": str(locked.cameo_id)},
        )
    return locked


# --- hooks called by accounts ------------------------------------------------------------


def on_account_deleted(*, user: User) -> None:
    for cameo in Cameo.objects.filter(owner=user).exclude(status=S.REVOKED):
        cameo_transition(cameo=cameo, to=S.REVOKED, actor=None, reason="account deleted")


def on_block(*, blocker: User, blocked: User) -> None:
    """A block voids cameo access both ways: grants go, open requests are cancelled."""
    pairs = [(blocker, blocked), (blocked, blocker)]
    for owner, other in pairs:
        for grant in CameoGrant.objects.filter(cameo__owner=owner, user=other).select_related(
            "cameo"
        ):
            cameo_ungrant(cameo=grant.cameo, user=other)
        ACCESS_REQUEST_STATES.bulk(
            AccessRequest.objects.filter(cameo__owner=owner, requester=other),
            R.CANCELLED,
            decided_at=timezone.now(),
        )

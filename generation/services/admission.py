"""Admission: everything decided before a job exists, in one transaction.

Suspension (403 `account_suspended`) -> quota -> checks of the prompt alone (the
`admission.prompt_check` hook: moderation's prompt blocklist, 403 `content_policy`) -> cameo
resolution (ids, @handles, and the cameos a remix parent carries) -> consent for each ->
registered IP (rights.catalogue: 403 `ip_blocked`) -> the pluggable policy checks (the
`admission.check` hook: moderation's public-figure protection) -> request rewrites
(`admission.adjust`) -> the job row `queued` -> dispatch after commit.

The safety rules themselves belong to moderation (a higher layer), so admission only calls
the hooks; RIFF_HOOKS names the implementations (docs/moderation-safety.md).
"""

from __future__ import annotations

import re
import secrets
import uuid
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.models import User
from accounts.services import user_suspension_check
from cameos.consent import cameo_decisions, cameos_for_use
from cameos.models import Cameo
from cameos.selectors import cameos_by_handles
from config.core import hooks
from config.core.errors import ApiError, Forbidden, Invalid
from rights.catalogue import admission_check as rights_admission_check
from rights.catalogue import catalogue_stamp_statement
from rights.ledger import InsufficientFunds
from rights.selectors import credits_balance
from rights.services import credit_spend

from ..batch import insert_statement, run_together
from ..engine.backends import engine_takes_cameos
from ..hooks import (
    ADMISSION_ADJUST,
    ADMISSION_CHECK,
    ADMISSION_PREFETCH,
    ADMISSION_PROMPT_CHECK,
    GENERATION_ADMITTED,
    LIKENESS_SOURCES,
    REMIX_PARENT_VIDEO,
)
from ..models import Appearance, Aspect, Generation, GenerationCameo, GenerationStatus

HANDLE_RE = re.compile(r"(?<![\w@])@([A-Za-z0-9_.]{3,30})")


@dataclass
class AdmissionRequest:
    """What the caller asked for, already shape-validated by the serializer."""

    prompt: str
    cameo_ids: list = field(default_factory=list)
    remix_of_id: Any = None
    seconds: int = 2
    aspect: str = "9:16"
    seed: int | None = None
    serve_id: str = ""
    # The Videos API's extras (docs/videos-api.md): the engine, the delivered "WxH", a video of
    # the caller's to start from (a Video row, already checked to be the caller's and
    # deliverable) and how, and an uploaded first-frame reference (a storage name).
    model: str = ""
    size: str = ""
    source_video: Any = None
    source_mode: str = ""
    reference_image: str = ""
    # Per-admission scratch space for checks: what several hooks of one admission read (the
    # moderation policy snapshot) is read once per request and kept here, never across
    # requests.
    memo: dict = field(default_factory=dict, repr=False, compare=False)


def _quota_for(user: User) -> int:
    return settings.RIFF_DAILY_QUOTA_TEEN if user.is_teen else settings.RIFF_DAILY_QUOTA


def _quota_exceeded(user: User) -> ApiError:
    now = timezone.now()
    day_start = datetime.combine(now.date(), time.min, tzinfo=now.tzinfo)
    retry = int((day_start + timedelta(days=1) - now).total_seconds()) + 1
    return ApiError(
        f"You have used today's {_quota_for(user)} generations and have no credits left.",
        code="quota_exceeded",
        status_code=429,
        headers={"Retry-After": str(retry)},
    )


# Failures that are ours, not the caller's: they give the quota back.
OUR_FAULT = ("worker_lost", "engine_error")
# Names from the models only; every value is a parameter.
_USERS, _JOBS = User._meta.db_table, Generation._meta.db_table
_LOCK_USER_SQL = f'SELECT "suspended_until" FROM "{_USERS}" WHERE id = %s FOR UPDATE'  # noqa: S608
_QUOTA_WHERE = "owner_id = %s AND created_at >= %s AND NOT (status = %s AND error_code IN (%s, %s))"
# Counts no further than the quota: only whether it is reached matters, so a user far beyond
# it (paying with credits) costs no more than one at it.
_QUOTA_ROWS = f'SELECT 1 FROM "{_JOBS}" WHERE {_QUOTA_WHERE} LIMIT %s'  # noqa: S608
_QUOTA_USED_SQL = f"SELECT count(*) FROM ({_QUOTA_ROWS}) used"  # noqa: S608


def _lock_and_count(user: User, limit: int, memo: dict) -> tuple[datetime | None, int]:
    """Locks the caller's user row and counts the generations that use today's quota (up to
    `limit`), in one round trip (generation.batch): the count runs after the lock is granted,
    with a snapshot of its own, so it sees every admission committed before ours. Returns the
    row's current `suspended_until` and the count. Jobs that failed on our side
    (`worker_lost`, `engine_error`) don't count.

    The same round trip carries the reads later checks would otherwise each make on their
    own: the rights catalogue's freshness stamp and whatever the `admission.prefetch` hook
    names (moderation's policy stamp); their rows go into `memo` under their keys."""
    now = timezone.now()
    day_start = datetime.combine(now.date(), time.min, tzinfo=now.tzinfo)
    prefetch = [catalogue_stamp_statement()]
    for statements in hooks.run(ADMISSION_PREFETCH.name, user=user):
        prefetch.extend(statements)
    rows = run_together(
        [
            (_LOCK_USER_SQL, [user.pk]),
            (
                _QUOTA_USED_SQL,
                [user.pk, day_start, GenerationStatus.FAILED.value, *OUR_FAULT, limit],
            ),
            *((sql, []) for _, sql in prefetch),
        ]
    )
    locked, (count,) = rows[0], rows[1][0]
    for (key, _), got in zip(prefetch, rows[2:], strict=True):
        memo[key] = tuple(got[0]) if got else None
    return (locked[0][0] if locked else user.suspended_until), count


def _spend_credit(user: User, generation_id: uuid.UUID) -> None:
    """Beyond the daily quota a generation costs one credit (rights ledger), keyed by the
    generation's id; none left is 429 `quota_exceeded`. A failed or cancelled generation gets
    it back (generation.services.jobs, exactly once)."""
    try:
        with transaction.atomic():
            credit_spend(user=user, key=str(generation_id))
    except InsufficientFunds:
        raise _quota_exceeded(user) from None


def remix_parent_video(remix_of_id):
    """The video a remix continues (the `remix.parent_video` hook), or None."""
    if remix_of_id is None:
        return None
    return hooks.provide(REMIX_PARENT_VIDEO.name, remix_of_id=remix_of_id)


def inherited_video(source_video, remix_of_id):
    """The video whose frames a new one continues, if any: its IP claims carry over."""
    if source_video is not None:
        return getattr(source_video, "pk", source_video)
    return remix_parent_video(remix_of_id)


def _refuse(cameo_id, message: str) -> Forbidden:
    return Forbidden(message, code="cameo_permission_denied", fields={"cameos": [str(cameo_id)]})


def source_video_cameos(video) -> list[Cameo]:
    """The cameos a source video shows (its appearances): a video made from it carries them."""
    return [
        appearance.cameo
        for appearance in Appearance.objects.filter(video=video)
        .select_related("cameo")
        .order_by("created_at", "id")
    ]


def carried_cameos(user: User, request: AdmissionRequest) -> list[Cameo]:
    """Likenesses the request brings in without naming them: the cameos of the video it
    starts from (an extension, an edit or a remix through the Videos API), a remix parent's
    cameos, and whatever else an upper layer registers for the `admission.likeness_sources`
    hook.

    Each source is `fn(*, user, request) -> list[Cameo]` and may refuse (a remix of a post the
    caller may not see is a 404 before any cameo is looked at, so nothing leaks).
    """
    carried = source_video_cameos(request.source_video) if request.source_video else []
    found = hooks.run(LIKENESS_SOURCES.name, user=user, request=request)
    return carried + [cameo for cameos in found for cameo in cameos]


def resolve_cameos(user: User, request: AdmissionRequest) -> list[Cameo]:
    """Every likeness the video will carry, each one checked for consent.

    Three ways a cameo reaches a video: by id, by @handle in the prompt, and carried in by the
    input (a remix parent's frames show its cameos). Consent is required for all three: a remix
    is never a way around a cameo's audience.

    An id the caller may not use (or that does not exist) is a 403 `cameo_permission_denied`, so
    the answer never reveals whether someone else's cameo exists. An @handle resolves only to a
    cameo the caller may use; any other @word (no such cameo, or one the caller may not use) is
    just text, and both answer alike, so a prompt can't probe which handles exist.
    """
    ids = list(dict.fromkeys(Cameo._meta.pk.to_python(i) for i in request.cameo_ids))
    # The named cameos are loaded and checked in one query.
    named = cameos_for_use(user, ids)
    cameos: list[Cameo] = []
    found: dict = {}
    for cameo_id in ids:
        cameo, decision = named.get(cameo_id, (None, None))
        if cameo is None or not decision.allowed:
            raise _refuse(cameo_id, "You may not use this cameo.")
        cameos.append(cameo)
        found[cameo.pk] = cameo
    carried = [cameo for cameo in carried_cameos(user, request) if cameo.pk not in found]
    decisions = cameo_decisions(user, [cameo.pk for cameo in carried])
    for cameo in carried:
        if cameo.pk in found:
            continue
        decision = decisions.get(cameo.pk)
        if decision is None or not decision.allowed:
            what = (
                "video you are starting from" if request.source_video else "post you are remixing"
            )
            raise _refuse(cameo.pk, f"The {what} shows @{cameo.handle}, whom you may not use.")
        cameos.append(cameo)
        found[cameo.pk] = cameo
    handles = HANDLE_RE.findall(request.prompt)
    mentioned = (
        [c for c in cameos_by_handles(handles=handles) if c.pk not in found] if handles else []
    )
    decisions = cameo_decisions(user, [cameo.pk for cameo in mentioned])
    for cameo in mentioned:
        decision = decisions.get(cameo.pk)
        if cameo.pk in found or decision is None or not decision.allowed:
            continue
        cameos.append(cameo)
        found[cameo.pk] = cameo
    if len(cameos) > settings.RIFF_MAX_CAMEOS_PER_VIDEO:
        raise ApiError(
            f"At most {settings.RIFF_MAX_CAMEOS_PER_VIDEO} cameos per video.",
            code="too_many_cameos",
            fields={"cameos": ["Too many."]},
        )
    return cameos


def _engine_takes(cameos: list, request: AdmissionRequest) -> None:
    """Refuses (400 `cameo_unsupported`) cameos the job's engine can't render: a text-only
    model, a remote server (a likeness never leaves this Riff), or an image-to-video model asked
    for a cameo in a remix, an extension or a clip from a reference image. The worker would refuse the same after queueing."""
    if not cameos:
        return
    model = request.model or settings.RIFF_ENGINE
    # a remix, an extension or a reference image: the clip starts from another picture
    continuing = bool(request.remix_of_id or request.source_video or request.reference_image)
    if not engine_takes_cameos(model, continuing=continuing):
        raise Invalid(
            f"The {model} engine can't put a cameo in "
            + ("a clip that starts from another video or image" if continuing else "a video")
            + ". Leave the cameo out, or choose another engine.",
            code="cameo_unsupported",
        )


# One transaction: the caller's row stays locked from the quota count to the job's INSERT, so
# two admissions of one user can't both see the last free slot.
@transaction.atomic
def generation_admit(*, user: User, request: AdmissionRequest) -> Generation:
    # Serialise admissions per user so the quota check can't be raced.
    quota = _quota_for(user)
    user.suspended_until, used = _lock_and_count(user, quota, request.memo)
    # A suspended user may not generate or remix (403 `account_suspended`), before anything
    # else, the quota included; the locked row is the current one, whatever `user` held.
    user_suspension_check(user=user)
    over_quota = used >= quota
    # The quota answers first, as it always has; the credit itself is spent (and re-checked
    # under the ledger's lock) only once every other check has passed.
    if over_quota and credits_balance(user=user) <= 0:
        raise _quota_exceeded(user)
    # Checks of the prompt alone (the blocklist) answer before any cameo refusal.
    hooks.run(ADMISSION_PROMPT_CHECK.name, user=user, prompt=request.prompt, request=request)
    cameos = resolve_cameos(user, request)
    _engine_takes(cameos, request)
    # Registered IP: a blocked asset named in the prompt, in a cameo's instructions, or
    # portrayed by a character cameo is refused here (403 `ip_blocked`); the worker checks the
    # meaning of the prompt too (semantic) before it renders.
    rights_admission_check(
        user=user,
        prompt=request.prompt,
        cameos=cameos,
        inherited_from=inherited_video(request.source_video, request.remix_of_id),
        memo=request.memo,
    )
    hooks.run(
        ADMISSION_CHECK.name, user=user, prompt=request.prompt, cameos=cameos, request=request
    )
    hooks.run(ADMISSION_ADJUST.name, user=user, request=request)
    generation_id = uuid.uuid4()
    if over_quota:
        _spend_credit(user, generation_id)
    generation = Generation(
        id=generation_id,
        owner=user,
        prompt=request.prompt,
        remix_of_id=request.remix_of_id,
        serve_id=request.serve_id,
        seconds=request.seconds,
        aspect=request.aspect,
        seed=request.seed if request.seed is not None else secrets.randbelow(2**31),
        model=request.model or settings.RIFF_ENGINE,
        size=request.size,
        source_video=request.source_video,
        source_mode=request.source_mode,
        reference_image=request.reference_image,
        # Stamped here rather than by an UPDATE after the commit (generation.dispatch).
        dispatched_at=timezone.now(),
    )
    links = [
        GenerationCameo(
            generation=generation, cameo=c, instructions_version=c.instructions_version, position=i
        )
        for i, c in enumerate(cameos)
    ]
    # The job row and its cameo links in one round trip: the same INSERTs `create()` and
    # `bulk_create()` compile (the links' own ids are not read back; nothing here needs them).
    run_together([insert_statement([generation]), *([insert_statement(links)] if links else [])])
    # Upper layers keep per-owner state from it (feed's card state: the last creation).
    hooks.run(GENERATION_ADMITTED.name, generation=generation)
    # What the response serializes (GenerationOut reads `cameo_links`): no second read.
    generation._prefetched_objects_cache = {"cameo_links": links}
    from ..dispatch import dispatch_after_commit

    dispatch_after_commit(generation, stamped=True)
    return generation


def admit(*, user: User, payload: dict[str, Any]) -> Generation:
    """Admits a generation from a request body already validated by `GenerationIn` (or the
    remix endpoint's `RemixIn`, with the parent from its path as `remix_of`), keyed by the
    serializer's field names. The one way an API view starts a generation: it validates, calls
    this, and serializes the result."""
    request = AdmissionRequest(
        prompt=payload["prompt"],
        cameo_ids=list(payload.get("cameos", [])),
        remix_of_id=payload.get("remix_of"),
        seconds=payload.get("seconds", settings.RIFF_DEFAULT_SECONDS),
        aspect=payload.get("aspect", Aspect.PORTRAIT),
        seed=payload.get("seed"),
        serve_id=payload.get("serve_id", ""),
    )
    return generation_admit(user=user, request=request)

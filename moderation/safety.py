"""Safety rules: the prompt blocklist, public-figure protection and the output check's
frame-hash blocklist, with the services moderators use on what they hold
(docs/moderation-safety.md).

Generation sits below moderation and never imports this module: admission and the worker call
hooks (generation/hooks.py) whose implementations are in moderation.checks and come here.

- **Prompt blocklist** (`SafetyRule`): whole-word keywords or regexes over the NFKC-case-folded
  prompt; `teens_only` rules for teens only -> 403 `content_policy` with the rule's message.
- **Public figures** (`ProtectedFigure`): a prompt or a cameo's instructions naming a protected
  person, matched by rights.detection's `AliasMatcher` (the IP detection's normalisation:
  look-alike letters, leetspeak, spacing, punctuation, possessives), is refused (403
  `content_policy`) unless the video uses that person's own linked cameo: using it is their
  consent, given through the cameo's audience.
- **Output check** (`BlockedFrameHash`): a 64-bit difference hash (dHash) of every
  RIFF_OUTPUT_HASH_EVERY-th generated frame against the hashes staff registered; a frame within
  RIFF_OUTPUT_HASH_DISTANCE bits of one holds the video (`held`) and opens a system report in
  the `output_check` queue. Moderators release it (`held_release`: held -> draft) or take it
  down (the usual takedown event).
"""

from __future__ import annotations

import re
import threading
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from django.conf import settings
from django.db import IntegrityError, connection, transaction
from PIL import Image

from accounts.models import User
from accounts.services import notification_create
from cameos.consent import cameo_decisions
from cameos.models import Cameo
from config.core.errors import Forbidden
from generation.models import Video, VideoState
from generation.services.videos import video_release
from rights.detection import AliasMatcher

from .models import (
    BlockedFrameHash,
    EventType,
    ProtectedFigure,
    Reason,
    Report,
    SafetyRule,
    SubjectType,
    Ticket,
    TicketStatus,
)
from .services import MAX_DETAILS, event_record, require_role, ticket_priority
from .subjects import subject_get

# The moderation queue held videos wait in (Ticket.work_queue).
OUTPUT_CHECK_QUEUE = "output_check"

# --- the prompt blocklist and public figures: one snapshot per change ------------------------


def normalize_prompt(text: str) -> str:
    return unicodedata.normalize("NFKC", text).casefold()


def _rule_pattern(rule: SafetyRule) -> re.Pattern:
    """What `rule` looks for in an already normalised prompt. A keyword matches as a whole
    word (or phrase)."""
    if rule.kind == SafetyRule.Kind.REGEX:
        return re.compile(rule.pattern, flags=re.IGNORECASE)
    keyword = re.escape(normalize_prompt(rule.pattern))
    return re.compile(rf"(?<!\w){keyword}(?!\w)")


@dataclass(frozen=True)
class PolicySnapshot:
    """The enabled prompt rules (compiled, in id order) and the protected-figure matcher, as
    they were at one freshness stamp."""

    stamp: tuple
    rules: tuple[tuple[SafetyRule, re.Pattern], ...]
    matcher: AliasMatcher
    figures: dict[Any, ProtectedFigure]


# Per table: rows, sum of xmin, sum of cmin. Table names from the models, nothing from a request.
_STAMP_PART = (
    "(SELECT count(*) AS n, coalesce(sum(xmin::text::bigint), 0) AS x, "
    'coalesce(sum(cmin::text::bigint), 0) AS c FROM "{}") t{}'
)
_POLICY_STAMP_SQL = "SELECT * FROM " + ", ".join(  # noqa: S608
    _STAMP_PART.format(model._meta.db_table, i)
    for i, model in enumerate((SafetyRule, ProtectedFigure))
)


class _Policy:
    """Admission's moderation policy, compiled once per change of the rules or the figures
    (process-local). The freshness check is one query for both tables: per table the row
    count and the sums of the rows' `xmin` (the transaction that wrote each row version) and
    `cmin` (the statement within it). Every committed insert, update or delete changes it: a
    new row version is written by the newest transaction there is, so `xmin` grows, or, when
    the versions it replaces are that same transaction's own, by a later statement, so `cmin`
    grows; a delete changes the count. That holds for writes that bypass the ORM too (the
    admin's bulk actions, `QuerySet.update()`, SQL), which an `updated_at` stamp would miss,
    and within one transaction. A VACUUM FREEZE or a concurrent delete only changes the stamp
    (one spurious rebuild). It reads tuple headers, no row data: ~0.3 ms per 1000 rows."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._snapshot: PolicySnapshot | None = None

    @staticmethod
    def _stamp() -> tuple:
        with connection.cursor() as cursor:
            cursor.execute(_POLICY_STAMP_SQL)
            return tuple(cursor.fetchone())

    def current(self, stamp: tuple | None = None) -> PolicySnapshot:
        """The snapshot for `stamp` (read here when not given)."""
        if stamp is None:
            stamp = self._stamp()
        snapshot = self._snapshot
        if snapshot is not None and snapshot.stamp == stamp:
            return snapshot
        with self._lock:
            if self._snapshot is None or self._snapshot.stamp != stamp:
                # Read after the stamp: rows at least as new as it, so a change committed in
                # between only costs one more rebuild on the next request.
                rules = tuple(
                    (rule, _rule_pattern(rule))
                    for rule in SafetyRule.objects.filter(enabled=True).order_by("id")
                )
                figures = {f.pk: f for f in ProtectedFigure.objects.order_by("id")}
                pairs = [(f.pk, term) for f in figures.values() for term in [f.name, *f.aliases]]
                self._snapshot = PolicySnapshot(stamp, rules, AliasMatcher(pairs), figures)
            return self._snapshot


_POLICY = _Policy()


POLICY_STAMP_KEY = "moderation.policy.stamp"


def policy_stamp_statement() -> tuple[str, str]:
    """`(key, sql)` of the policy's freshness stamp, which admission reads in its first round
    trip (the `admission.prefetch` hook) and leaves in its `memo` under `key`."""
    return POLICY_STAMP_KEY, _POLICY_STAMP_SQL


def policy_snapshot(memo: dict | None = None) -> PolicySnapshot:
    """The current rules and figures. `memo` (admission's per-request scratch dict) keeps the
    snapshot for the rest of that request, so one admission checks freshness once however many
    of its checks read the policy, and it may hold the stamp admission already read."""
    if memo is None:
        return _POLICY.current()
    snapshot = memo.get("moderation.policy")
    if snapshot is None:
        stamp = memo.get(POLICY_STAMP_KEY)
        snapshot = memo["moderation.policy"] = _POLICY.current(stamp)
    return snapshot


def prompt_refusal(
    *, user: User, prompt: str, snapshot: PolicySnapshot | None = None
) -> Forbidden | None:
    """The 403 `content_policy` of the first enabled rule the prompt breaks (teens-only rules
    apply to teens only), or None. Same rules and answers as before the move to moderation."""
    text = normalize_prompt(prompt)
    teen = user.is_teen
    for rule, pattern in (snapshot or policy_snapshot()).rules:
        if (teen or not rule.teens_only) and pattern.search(text) is not None:
            return Forbidden(rule.message, code="content_policy")
    return None


def _figure_refusal(figure: ProtectedFigure, field: str) -> Forbidden:
    sentence = (
        f"{figure.name} is a protected public figure: videos of them can only be made with "
        "their own cameo."
    )
    return Forbidden(sentence, code="content_policy", fields={field: [sentence]})


def figures_named(text: str, snapshot: PolicySnapshot | None = None) -> list[ProtectedFigure]:
    """The protected figures `text` names, in the order they appear."""
    if not text:
        return []
    snapshot = snapshot or policy_snapshot()
    if not snapshot.figures:
        return []
    return [snapshot.figures[hit.key] for hit in snapshot.matcher.find(text)]


def figure_refusal(
    *,
    user: User,
    prompt: str,
    cameos: Sequence[Cameo] | None,
    snapshot: PolicySnapshot | None = None,
) -> Forbidden | None:
    """The 403 `content_policy` for the first protected figure the request names without
    using their own cameo, or None.

    `cameos`: the video's cameos, each already consented to (admission's resolution). None
    means they are not resolved yet (the prompt check, before any cameo refusal): then only a
    figure the caller could not bring in at all is refused (no linked cameo, or one the caller
    may not use), with the same answer, so the refusal comes first whenever it is certain.
    A cameo's instructions are checked once the cameos are known; its restrictions are not
    (they say what the cameo must never do, and naming a person there is no use of them).
    """
    snapshot = snapshot or policy_snapshot()
    if cameos is None:
        for figure in figures_named(prompt, snapshot):
            if figure.cameo_id is None or not _may_use(user, figure.cameo_id):
                return _figure_refusal(figure, "prompt")
        return None
    used = {cameo.pk for cameo in cameos}
    for figure in figures_named(prompt, snapshot):
        if figure.cameo_id not in used:
            return _figure_refusal(figure, "prompt")
    for cameo in cameos:
        for figure in figures_named(cameo.instructions or "", snapshot):
            if figure.cameo_id not in used:
                return _figure_refusal(figure, "cameos")
    return None


def _may_use(user: User, cameo_id) -> bool:
    decision = cameo_decisions(user, [cameo_id]).get(cameo_id)
    return decision is not None and decision.allowed


# --- frame hashes -----------------------------------------------------------------------------

HASH_BITS = 64
_DARK = 8  # letterbox rows/columns are no brighter than this anywhere


def _trim_letterbox(gray: np.ndarray) -> np.ndarray:
    """Drops near-black bars around the picture (the runner letterboxes to the aspect), so a
    frame hashes alike however it was padded. An all-dark frame is kept whole."""
    rows = np.flatnonzero(gray.max(axis=1) > _DARK)
    cols = np.flatnonzero(gray.max(axis=0) > _DARK)
    if rows.size == 0 or cols.size == 0:
        return gray
    return gray[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def dhash(image: np.ndarray | Image.Image) -> int:
    """The 64-bit difference hash of one picture (uint8 [H, W, 3] or [H, W], or a PIL image):
    grey, letterbox trimmed, shrunk to 9x8, one bit per horizontal neighbour pair (1 where
    the right pixel is brighter), row by row, the first the most significant. Robust to
    scaling, re-encoding and small edits; an unsigned int in [0, 2**64)."""
    if isinstance(image, Image.Image):
        gray = np.asarray(image.convert("L"), dtype=np.uint8)
    else:
        array = np.asarray(image, dtype=np.uint8)
        gray = (
            np.asarray(Image.fromarray(array).convert("L"), dtype=np.uint8)
            if array.ndim == 3
            else array
        )
    small = Image.fromarray(_trim_letterbox(gray)).resize((9, 8), Image.Resampling.LANCZOS)
    pixels = np.asarray(small, dtype=np.int16)
    bits = (pixels[:, 1:] > pixels[:, :-1]).flatten()
    return int.from_bytes(np.packbits(bits).tobytes(), "big")


def hash_to_db(value: int) -> int:
    """Unsigned 64-bit -> the signed int64 stored in BlockedFrameHash.hash."""
    value &= (1 << HASH_BITS) - 1
    return value - (1 << HASH_BITS) if value >= 1 << (HASH_BITS - 1) else value


def hash_from_db(value: int) -> int:
    return value & ((1 << HASH_BITS) - 1)


def hash_hex(value: int) -> str:
    return f"{hash_from_db(value):016x}"


def blocked_frame_hash_add(*, value: int, label: str = "") -> BlockedFrameHash:
    """Registers a hash (unsigned, e.g. `dhash(image)` or one shared by another platform)."""
    return BlockedFrameHash.objects.create(hash=hash_to_db(value), label=label.strip()[:200])


def _sampled(frames: np.ndarray, every: int) -> Iterable[tuple[int, np.ndarray]]:
    count = len(frames)
    picked = list(range(0, count, max(1, every)))
    if count and picked[-1] != count - 1:
        picked.append(count - 1)  # the last frame too: a clip may end on what matters
    for index in picked:
        yield index, frames[index]


def output_problems(*, frames: np.ndarray) -> list[str]:
    """The default output check: every RIFF_OUTPUT_HASH_EVERY-th frame (and the last) against
    every blocked hash; one problem per blocked hash a frame comes within
    RIFF_OUTPUT_HASH_DISTANCE bits of. No hash registered: [] at once, nothing is hashed."""
    blocked = list(BlockedFrameHash.objects.order_by("id").values_list("hash", "label"))
    if not blocked:
        return []
    table = np.array([h for h, _ in blocked], dtype=np.int64).view(np.uint64)
    limit = settings.RIFF_OUTPUT_HASH_DISTANCE
    found: dict[int, tuple[int, int]] = {}  # blocked row -> (frame, distance), first frame
    for index, frame in _sampled(frames, settings.RIFF_OUTPUT_HASH_EVERY):
        distances = np.bitwise_count(table ^ np.uint64(dhash(frame)))
        for row in np.flatnonzero(distances <= limit):
            found.setdefault(int(row), (index, int(distances[row])))
    problems = []
    for row, (index, distance) in sorted(found.items(), key=lambda kv: kv[1]):
        value, label = blocked[row]
        name = f"{label} ({hash_hex(value)})" if label else hash_hex(value)
        problems.append(
            f"Frame {index} matches the blocked frame hash {name}, {distance} bits apart."
        )
    return problems


# --- holds ------------------------------------------------------------------------------------


@transaction.atomic
def held_report_create(*, video: Video, problems: Sequence[str]) -> tuple[Ticket, Report]:
    """Opens a held video for review, like `report_create` with the system as the reporter
    (reporter None, reason `other`, the problems as details): the video's open ticket, or a new
    one in the `output_check` queue. Inside the caller's transaction (the worker's finishing
    one), so the ticket exists exactly when the held video does."""
    subject = subject_get(SubjectType.VIDEO, str(video.pk))
    details = "\n".join(str(p) for p in problems).strip()[:MAX_DETAILS]
    ticket = (
        Ticket.objects.select_for_update()
        .filter(subject_type=subject.type, subject_id=subject.id)
        .exclude(status=TicketStatus.CLOSED)
        .first()
    )
    if ticket is None:
        try:
            with transaction.atomic():
                ticket = Ticket.objects.create(
                    subject_type=subject.type,
                    subject_id=subject.id,
                    reason=Reason.OTHER,
                    work_queue=OUTPUT_CHECK_QUEUE,
                )
        except IntegrityError:  # a report opened it meanwhile
            ticket = (
                Ticket.objects.select_for_update()
                .filter(subject_type=subject.type, subject_id=subject.id)
                .exclude(status=TicketStatus.CLOSED)
                .get()
            )
    report = Report.objects.create(
        reporter=None,
        subject_type=subject.type,
        subject_id=subject.id,
        reason=Reason.OTHER,
        details=details,
        ticket=ticket,
    )
    ticket.reporter_count = ticket.reports.filter(muted=False).count()
    ticket.priority = ticket_priority(ticket, subject)
    ticket.save()
    return ticket, report


@transaction.atomic
def held_release(*, video: Video, actor: User, reason: str = "") -> Video:
    """A moderator found nothing wrong with a held video: it becomes a draft (video_release),
    an `acknowledge` event records who and why (closing its open tickets as "no action"), and
    the owner is told. Needs the moderator role. Releasing a draft again changes nothing;
    any other state is 409 `invalid_transition`."""
    require_role(actor, "moderator")
    locked = Video.objects.select_for_update().select_related("owner").get(pk=video.pk)
    if locked.state == VideoState.DRAFT:
        return locked
    released = video_release(video=locked)
    event_record(
        actor=actor,
        subject_type=SubjectType.VIDEO,
        subject_id=str(released.pk),
        type=EventType.ACKNOWLEDGE,
        reason=(reason or "").strip() or "released from the output-check hold",
    )
    notification_create(
        recipient=locked.owner,
        kind="video.released",
        data={"video_id": str(released.pk), "state": released.state},
    )
    video.state = released.state
    return released

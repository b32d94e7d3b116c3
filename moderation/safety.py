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
from typing import Any

import numpy as np
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Count, Max
from PIL import Image

from accounts.models import User
from accounts.services import notification_create
from cameos.consent import cameo_can_use
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

# --- the prompt blocklist ---------------------------------------------------------------------


def normalize_prompt(text: str) -> str:
    return unicodedata.normalize("NFKC", text).casefold()


def _rule_hits(rule: SafetyRule, text: str) -> bool:
    """`text` is already normalised. A keyword matches as a whole word (or phrase)."""
    if rule.kind == SafetyRule.Kind.REGEX:
        return re.search(rule.pattern, text, flags=re.IGNORECASE) is not None
    keyword = re.escape(normalize_prompt(rule.pattern))
    return re.search(rf"(?<!\w){keyword}(?!\w)", text) is not None


def prompt_refusal(*, user: User, prompt: str) -> Forbidden | None:
    """The 403 `content_policy` of the first enabled rule the prompt breaks (teens-only rules
    apply to teens only), or None. Same rules and answers as before the move to moderation."""
    text = normalize_prompt(prompt)
    rules = SafetyRule.objects.filter(enabled=True).order_by("id")
    if not user.is_teen:
        rules = rules.filter(teens_only=False)
    for rule in rules:
        if _rule_hits(rule, text):
            return Forbidden(rule.message, code="content_policy")
    return None


# --- public figures ---------------------------------------------------------------------------


class _Figures:
    """The protected-figure matcher, compiled once per change of the list (process-local), as
    rights.catalogue does for IP aliases: one cheap aggregate query per admission says whether
    the list changed (a row added, edited or deleted)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stamp: tuple | None = None
        self._matcher: AliasMatcher | None = None
        self._figures: dict[Any, ProtectedFigure] = {}

    def current(self) -> tuple[AliasMatcher, dict[Any, ProtectedFigure]]:
        stamp = tuple(
            ProtectedFigure.objects.aggregate(
                n=Count("id"), m=Max("updated_at"), last=Max("id")
            ).values()
        )
        with self._lock:
            if stamp != self._stamp or self._matcher is None:
                figures = {f.pk: f for f in ProtectedFigure.objects.all()}
                pairs = [(f.pk, term) for f in figures.values() for term in [f.name, *f.aliases]]
                self._matcher = AliasMatcher(pairs)
                self._figures = figures
                self._stamp = stamp
            return self._matcher, self._figures


_FIGURES = _Figures()


def _figure_refusal(figure: ProtectedFigure, field: str) -> Forbidden:
    sentence = (
        f"{figure.name} is a protected public figure: videos of them can only be made with "
        "their own cameo."
    )
    return Forbidden(sentence, code="content_policy", fields={field: [sentence]})


def figures_named(text: str) -> list[ProtectedFigure]:
    """The protected figures `text` names, in the order they appear."""
    matcher, figures = _FIGURES.current()
    if not figures or not text:
        return []
    return [figures[hit.key] for hit in matcher.find(text)]


def figure_refusal(*, user: User, prompt: str, cameos: Sequence[Cameo] | None) -> Forbidden | None:
    """The 403 `content_policy` for the first protected figure the request names without
    using their own cameo, or None.

    `cameos`: the video's cameos, each already consented to (admission's resolution). None
    means they are not resolved yet (the prompt check, before any cameo refusal): then only a
    figure the caller could not bring in at all is refused (no linked cameo, or one the caller
    may not use), with the same answer, so the refusal comes first whenever it is certain.
    A cameo's instructions are checked once the cameos are known; its restrictions are not
    (they say what the cameo must never do, and naming a person there is no use of them).
    """
    if cameos is None:
        for figure in figures_named(prompt):
            if figure.cameo_id is None or not _may_use(user, figure.cameo_id):
                return _figure_refusal(figure, "prompt")
        return None
    used = {cameo.pk for cameo in cameos}
    for figure in figures_named(prompt):
        if figure.cameo_id not in used:
            return _figure_refusal(figure, "prompt")
    for cameo in cameos:
        for figure in figures_named(cameo.instructions or ""):
            if figure.cameo_id not in used:
                return _figure_refusal(figure, "cameos")
    return None


def _may_use(user: User, cameo_id) -> bool:
    cameo = Cameo.objects.filter(pk=cameo_id).first()
    return cameo is not None and cameo_can_use(user, cameo).allowed


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

"""What the console shows: queue rows with a readable subject, and everything a moderator
needs on one report's page (the video, its prompt, cameos, IP claims, lineage, provenance,
the subject's status and history, the owner's standing).

Reads only: staff see removed and taken-down things too, so these use the moderation
selectors (`subject_get`, `subject_out`), never the user-facing visibility rules.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

from django.core.files.storage import default_storage

from accounts.models import User
from cameos.models import Cameo
from config.core.errors import NotFound
from feed.models import Comment, Post
from generation.models import Appearance, Generation, Video
from rights.selectors import video_claims

from ..models import SubjectStatus, SubjectType, Ticket
from ..selectors import status_out, subject_out, tickets
from ..subjects import Subject, subject_get

logger = logging.getLogger(__name__)
T = SubjectType

# Provenance is checked on the stored file when it is at most this big (the report page
# reads it whole; Riff's clips are a few MB).
PROVENANCE_MAX_BYTES = 64 * 1024 * 1024


def _short(text: str, n: int = 70) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= n else text[: n - 1] + "…"


def subject_summaries(rows: list[Ticket]) -> dict[tuple[str, str], dict[str, Any]]:
    """`{(type, id): {"title", "owner", "state"}}` for the queue, one query per subject type."""
    wanted: dict[str, set[str]] = {}
    for t in rows:
        wanted.setdefault(t.subject_type, set()).add(t.subject_id)
    out: dict[tuple[str, str], dict[str, Any]] = {}

    def put(kind, pk, title, owner, state=""):
        out[(kind, str(pk))] = {"title": title, "owner": owner, "state": state}

    if ids := wanted.get(T.POST):
        for p in Post.objects.filter(pk__in=ids).select_related("author", "video__generation"):
            put(T.POST, p.pk, _short(p.caption or p.video.generation.prompt), p.author, p.state)
    if ids := wanted.get(T.VIDEO):
        for v in Video.objects.filter(pk__in=ids).select_related("owner", "generation"):
            put(T.VIDEO, v.pk, _short(v.generation.prompt), v.owner, v.state)
    if ids := wanted.get(T.COMMENT):
        for c in Comment.objects.filter(pk__in=ids).select_related("author"):
            put(T.COMMENT, c.pk, _short(c.body), c.author, "hidden" if c.hidden_at else "")
    if ids := wanted.get(T.CAMEO):
        for c in Cameo.objects.filter(pk__in=ids).select_related("owner"):
            put(T.CAMEO, c.pk, f"@{c.handle} ({c.kind})", c.owner, c.status)
    if ids := wanted.get(T.USER):
        for u in User.objects.filter(pk__in=ids):
            put(T.USER, u.pk, f"@{u.username}", u, "" if u.is_active else "inactive")
    if ids := wanted.get(T.GENERATION):
        for g in Generation.objects.filter(pk__in=ids).select_related("owner"):
            put(T.GENERATION, g.pk, _short(g.prompt), g.owner, g.status)
    return out


def provenance(video: Video) -> dict[str, Any]:
    """The stored SHA-256, whether the file still has it, and its C2PA manifest (present,
    valid signature, signed by us, naming this video)."""
    out: dict[str, Any] = {"sha256": video.sha256, "file": "missing"}
    name = video.content
    try:
        if not name or not default_storage.exists(name):
            return out
        size = default_storage.size(name)
        out["size"] = size
        if size > PROVENANCE_MAX_BYTES:
            out["file"] = "too large to check here"
            return out
        with default_storage.open(name, "rb") as fh:
            data = fh.read()
    except OSError:
        logger.exception("console: could not read %s", name)
        return out
    out["file"] = "present"
    out["sha256_matches"] = hashlib.sha256(data).hexdigest() == video.sha256
    try:
        from generation.provenance import verify_media  # c2pa loads on first use

        result = verify_media(data, mime="video/mp4")
    except Exception:  # a provenance library failure must not take the report page down
        logger.exception("console: C2PA check failed for video %s", video.pk)
        out["c2pa"] = None
        return out
    riff = result.riff or {}
    out["c2pa"] = {
        "present": result.has_manifest,
        "valid": result.valid,
        "ours": result.trusted,
        "issuer": result.common_name or result.issuer,
        "names_this_video": str(riff.get("video_id", "")) == str(video.pk) if riff else None,
        "errors": result.validation_errors,
    }
    return out


def _video_of(subject: Subject) -> Video | None:
    if subject.type == T.COMMENT:
        post = subject.obj.post
        return post.video if post is not None else None
    return subject.video


def owner_standing(owner: User | None) -> dict[str, Any] | None:
    if owner is None:
        return None
    status = SubjectStatus.objects.filter(subject_type=T.USER, subject_id=str(owner.pk)).first()
    return {
        "user": owner,
        "status": status_out(status),
        "is_active": owner.is_active,
    }


def report_page(ticket: Ticket, *, full: bool = True) -> dict[str, Any]:
    """Everything the report page shows about `ticket`'s subject. `full=False`: only what
    deciding which actions apply needs (subject, status, owner), not the media checks."""
    try:
        subject = subject_get(ticket.subject_type, ticket.subject_id)
    except NotFound:
        return {"subject": None}
    data = subject_out(subject)
    video = _video_of(subject)
    post = subject.post
    page: dict[str, Any] = {
        "subject": subject,
        "status": data["status"],
        "events": data["events"],
        "other_tickets": [t for t in data["tickets"] if str(t["id"]) != str(ticket.pk)],
        "owner": owner_standing(subject.owner),
        "video": video,
        "post": post,
    }
    if not full:
        return page
    if video is not None:
        generation = video.generation
        page["generation"] = generation
        page["appearances"] = list(
            Appearance.objects.filter(video=video).select_related("cameo", "cameo__owner")
        )
        page["claims"] = list(video_claims(video_id=video.pk).order_by("created_at", "id"))
        page["provenance"] = provenance(video)
        if generation.remix_of_id and post is None:
            page["remix_of_post"] = Post.objects.filter(pk=generation.remix_of_id).first()
    if post is not None:
        page["parent"] = post.remix_of
        page["root"] = (
            Post.objects.select_related("author").filter(pk=post.root_id).first()
            if post.root_id and post.root_id != post.pk
            else None
        )
        page["depth"] = post.depth
        page["remix_count"] = Post.objects.filter(remix_of=post).count()
    if subject.type == T.CAMEO:
        page["cameo"] = subject.obj
        page["cameo_videos"] = Appearance.objects.filter(cameo=subject.obj).count()
    return page


def next_ticket(ticket: Ticket) -> Ticket | None:
    """The top of the queue (not this one): where a moderator goes after deciding."""
    return (
        tickets(status=None, work_queue=None, reason=None)
        .exclude(pk=ticket.pk)
        .order_by("-priority", "opened_at", "id")
        .first()
    )

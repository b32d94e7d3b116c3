"""A subject's moderation status as a fold over its events, oldest first. Pure: no database,
no clock (what is *in force now*, e.g. an unexpired strike, is read at display time), so the
stored SubjectStatus can be rebuilt from the events at any moment and compared.

| event | effect |
|---|---|
| takedown | taken down (until `expires_at`, if it has one) |
| reverse_takedown | not taken down |
| label | the label is added |
| escalate / acknowledge | escalated / not escalated |
| strike | a strike (its event id and expiry) is added |
| suspend | suspended until `expires_at` |
| ban / unban | banned / not banned |
| mute_reporter | muted |
| revoke_cameo | the cameo is revoked (final) |
| resolve_appeal, approved | the appealed event is undone (takedown, label, strike, suspension, ban, mute) |
| note, resolve_appeal rejected | nothing |
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol


class EventLike(Protocol):
    id: Any
    type: str
    expires_at: datetime | None
    label: str
    target_id: Any
    approved: bool | None


@dataclass
class Status:
    taken_down: bool = False
    takedown_until: datetime | None = None
    labels: list[str] = field(default_factory=list)
    escalated: bool = False
    strikes: list[list[Any]] = field(default_factory=list)  # [[event id, expires iso | None]]
    suspended_until: datetime | None = None
    banned: bool = False
    muted: bool = False
    cameo_revoked: bool = False
    event_count: int = 0

    FIELDS = (
        "taken_down",
        "takedown_until",
        "labels",
        "escalated",
        "strikes",
        "suspended_until",
        "banned",
        "muted",
        "cameo_revoked",
        "event_count",
    )

    def as_fields(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.FIELDS}


def _undo(status: Status, appealed: EventLike) -> None:
    kind = appealed.type
    if kind == "takedown":
        status.taken_down, status.takedown_until = False, None
    elif kind == "label" and appealed.label in status.labels:
        status.labels.remove(appealed.label)
    elif kind == "strike":
        status.strikes = [s for s in status.strikes if s[0] != appealed.id]
    elif kind == "suspend":
        status.suspended_until = None
    elif kind == "ban":
        status.banned = False
    elif kind == "mute_reporter":
        status.muted = False


def project(events: Iterable[EventLike]) -> Status:
    """The status `events` (one subject's, in the order they were recorded) add up to."""
    status = Status()
    seen: dict[Any, EventLike] = {}
    for event in events:
        status.event_count += 1
        seen[event.id] = event
        kind = event.type
        if kind == "takedown":
            status.taken_down, status.takedown_until = True, event.expires_at
        elif kind == "reverse_takedown":
            status.taken_down, status.takedown_until = False, None
        elif kind == "label":
            if event.label and event.label not in status.labels:
                status.labels.append(event.label)
        elif kind == "escalate":
            status.escalated = True
        elif kind == "acknowledge":
            status.escalated = False
        elif kind == "strike":
            expires = event.expires_at.isoformat() if event.expires_at else None
            status.strikes.append([event.id, expires])
        elif kind == "suspend":
            status.suspended_until = event.expires_at
        elif kind == "ban":
            status.banned = True
        elif kind == "unban":
            status.banned = False
        elif kind == "mute_reporter":
            status.muted = True
        elif kind == "revoke_cameo":
            status.cameo_revoked = True
        elif kind == "resolve_appeal" and event.approved and event.target_id in seen:
            _undo(status, seen[event.target_id])
    return status

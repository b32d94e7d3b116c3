"""The console's one-click actions: what each records through `event_record`, on what, who may
use it, and when it makes sense. The report page shows the actions the viewer's role allows
and that apply to the subject; the action view checks the same table again (a hidden button is
also a refused request: 403, nothing written)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..models import EventType, SubjectType, TicketStatus
from ..services import APPLIES_TO, EVENT_ROLE, ROLES

E, T = EventType, SubjectType


@dataclass(frozen=True)
class Action:
    name: str
    event: str
    title: str  # the button
    confirm: str  # what the confirmation says will happen
    target: str = "subject"  # or "owner": the subject's owner (a user)
    duration: bool = False
    label: bool = False
    danger: bool = False

    @property
    def role(self) -> str:
        return EVENT_ROLE[self.event]

    def allowed(self, role: str | None) -> bool:
        return role is not None and ROLES.index(role) >= ROLES.index(self.role)

    def applies(self, page: dict[str, Any], ticket) -> bool:
        """Whether it makes sense now for this ticket's subject (the page's reads)."""
        subject = page.get("subject")
        if subject is None:
            return False
        status = page["status"]
        if self.target == "owner":
            owner = page.get("owner")
            if owner is None:
                return False
            if self.event == E.BAN:
                return not owner["status"]["banned"]
            return True
        kinds = APPLIES_TO.get(self.event)
        if kinds is not None and subject.type not in kinds:
            return False
        if self.event == E.TAKEDOWN:
            return not status["taken_down"]
        if self.event == E.REVERSE_TAKEDOWN:
            return status["taken_down"]
        if self.event == E.REVOKE_CAMEO:
            return not status["cameo_revoked"] and subject.obj.status != "revoked"
        if self.event in (E.ACKNOWLEDGE, E.ESCALATE):
            return ticket.status not in (TicketStatus.CLOSED,) and not (
                self.event == E.ESCALATE and ticket.status == TicketStatus.ESCALATED
            )
        return True


ACTIONS: dict[str, Action] = {
    a.name: a
    for a in (
        Action(
            "takedown",
            E.TAKEDOWN,
            "Take down",
            "It leaves every feed and list, and its content answers 404. The owner is told "
            "and may appeal.",
            duration=True,
            danger=True,
        ),
        Action("reverse_takedown", E.REVERSE_TAKEDOWN, "Restore", "It is visible again."),
        Action("label", E.LABEL, "Label", "The label is added to the subject.", label=True),
        Action(
            "acknowledge",
            E.ACKNOWLEDGE,
            "Acknowledge (no action)",
            "Every open report on it closes as “no action”; reporters are told.",
        ),
        Action("escalate", E.ESCALATE, "Escalate", "The ticket goes to the escalated queue."),
        Action("note", E.NOTE, "Add note", "A note is added to the history; nothing else."),
        Action(
            "revoke_cameo",
            E.REVOKE_CAMEO,
            "Revoke cameo",
            "The cameo is revoked through its owner's own path: every video with it goes.",
            danger=True,
        ),
        Action(
            "strike",
            E.STRIKE,
            "Strike the owner",
            "A strike on the owner's account (RIFF_STRIKE_DAYS, or the hours given).",
            target="owner",
            duration=True,
        ),
        Action(
            "suspend",
            E.SUSPEND,
            "Suspend the owner",
            "The owner can't generate, remix, post or comment until it ends.",
            target="owner",
            duration=True,
            danger=True,
        ),
        Action(
            "ban",
            E.BAN,
            "Ban the owner",
            "The account is deactivated, its tokens and cameos revoked.",
            target="owner",
            danger=True,
        ),
    )
}


def available(role: str | None, page: dict[str, Any], ticket) -> list[Action]:
    return [a for a in ACTIONS.values() if a.allowed(role) and a.applies(page, ticket)]


def target_of(action: Action, page: dict[str, Any]) -> tuple[str, str]:
    """(subject_type, subject_id) the event is recorded on."""
    subject = page["subject"]
    if action.target == "owner":
        return T.USER, str(page["owner"]["user"].pk)
    return subject.type, subject.id

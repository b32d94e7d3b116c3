"""State machines: one allowed-transitions table per entity and the checks every transition
service makes with it (DESIGN.md: "State lives in one transition function").

Each app keeps one `<entity>_transition()` service that alone changes the state field; it
calls `machine.check(current, to)` under a row lock. Bulk changes (cancel every pending access
request of a revoked cameo, a worker claiming a queued job) go through `machine.bulk()`, a
conditional UPDATE that only touches rows whose current state may move to the target, so no
code path can write a transition the table does not allow.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from django.db.models import QuerySet

from .errors import Conflict


class StateMachine:
    def __init__(
        self, name: str, transitions: Mapping[str, Iterable[str]], *, field: str = "status"
    ) -> None:
        self.name = name
        self.field = field
        self.transitions = {str(k): frozenset(str(v) for v in vs) for k, vs in transitions.items()}

    @property
    def states(self) -> list[str]:
        return list(self.transitions)

    def can(self, current: str, to: str) -> bool:
        return str(to) in self.transitions.get(str(current), ())

    def check(self, current: str, to: str) -> None:
        """Raises 409 `invalid_transition` unless `current -> to` is in the table."""
        if not self.can(current, to):
            raise Conflict(
                f"This {self.name} cannot go from {current} to {to}.", code="invalid_transition"
            )

    def sources(self, to: str) -> list[str]:
        """The states from which `to` may be reached."""
        return [state for state, targets in self.transitions.items() if str(to) in targets]

    def bulk(self, queryset: QuerySet, to: str, **fields: Any) -> int:
        """Moves every row of `queryset` that may go to `to` there, in one conditional UPDATE
        (other rows are left alone); returns how many moved."""
        allowed = queryset.filter(**{f"{self.field}__in": self.sources(to)})
        return allowed.update(**{self.field: to}, **fields)

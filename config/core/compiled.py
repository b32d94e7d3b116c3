"""ORM queries compiled to SQL once per process (issue #31).

A For You ranking runs a dozen small queries built with the ORM (its sources, the viewer's
context, the remix attempts of its candidates). Building each from scratch, filters, `Q`s,
`Exists` subqueries and all, then compiling it, cost more CPU than PostgreSQL spent running
it: the consent rule's CASE alone (cameos.consent) was 8 ms of a ~50 ms ranking for a source
that usually finds nothing (docs/bench-feed.md).

`CompiledQuery(build, **kinds)` keeps the ORM as the one definition of each query and does the
building once: `build(**args)` returns the queryset, and it is compiled with a sentinel value
for every argument; the SQL text and the place of each sentinel among the parameters are kept.
`rows(**values)` then puts the values where the sentinels were and runs the SQL (one statement,
the same one Django would run). The text depends only on the code of `build`, never on data,
so it can't go stale; a `build` whose SQL would change shape with its values (a filter added
only when a list is non-empty) must not branch on them.

Argument kinds, each with its sentinel and how a value is bound:
- `uuid`: a UUID (a user's id) compared with `=`;
- `uuids`: a list of UUIDs for a `__any` lookup (config.core.lookups), bound as one array;
- `datetime`: an aware datetime;
- `strs`: a list of strings bound as one list parameter (`cameo_ids__has_any_keys`).

Compiling checks that each sentinel came out as parameters only (never in the SQL text) and at
least once; anything else is a RuntimeError at the first use, not a wrong answer.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import DEFAULT_DB_ALIAS
from django.db.models import QuerySet

from .lookups import uuid_array
from .sql import fetchall

KINDS = ("uuid", "uuids", "datetime", "strs")
_EPOCH = datetime(1971, 2, 3, 4, 5, 6, tzinfo=UTC)


def _sentinel(kind: str, index: int):
    """A value no row holds and no constant of a query equals, unique per argument."""
    mark = uuid.UUID(int=(1 << 127) | (0x5E171E << 64) | index)
    if kind == "uuid":
        return mark
    if kind == "uuids":
        return [mark]
    if kind == "datetime":
        return _EPOCH + timedelta(microseconds=7919 * (index + 1))
    return [f"riff-sentinel-{mark.hex}"]


def _bound(kind: str, value):
    if kind == "uuid":
        return value if type(value) is uuid.UUID else uuid.UUID(str(value))
    if kind == "uuids":
        return uuid_array(value)
    if kind == "datetime":
        if value.tzinfo is None:
            raise ValueError("a compiled query's datetime must be aware")
        return value
    return [str(v) for v in value]


class CompiledQuery:
    """One ORM query, compiled on first use (see the module docstring)."""

    def __init__(self, build: Callable[..., QuerySet], **kinds: str) -> None:
        unknown = set(kinds.values()) - set(KINDS)
        if unknown:
            raise ValueError(f"unknown argument kinds: {sorted(unknown)}")
        self.build = build
        self.kinds = kinds
        self._lock = threading.Lock()
        self._compiled: tuple[str, tuple] | None = None

    def _compile(self) -> tuple[str, tuple]:
        names = list(self.kinds)
        sentinels = {name: _sentinel(self.kinds[name], i) for i, name in enumerate(names)}
        sql, params = self.build(**sentinels).query.get_compiler(DEFAULT_DB_ALIAS).as_sql()
        # What each sentinel looks like once compiled into a parameter.
        expected = []
        for name in names:
            kind, value = self.kinds[name], sentinels[name]
            expected.append((name, uuid_array(value) if kind == "uuids" else value))
        slots, seen = [], set()
        for param in params:
            for name, compiled in expected:
                if type(param) is type(compiled) and param == compiled:
                    slots.append((name, None))
                    seen.add(name)
                    break
            else:
                slots.append((None, param))
        missing = set(names) - seen
        if missing:
            raise RuntimeError(f"compiled query: {sorted(missing)} did not compile as parameters")
        for name in names:
            value = sentinels[name]
            marks = value if isinstance(value, list) else [value]
            for mark in marks:
                text = mark.hex if isinstance(mark, uuid.UUID) else str(mark)
                if text in sql or str(mark) in sql:
                    raise RuntimeError(f"compiled query: {name} was written into the SQL text")
        return sql, tuple(slots)

    def bind(self, **values: Any) -> tuple[str, list]:
        """The SQL and its parameters for these argument values."""
        if values.keys() != self.kinds.keys():
            raise TypeError(f"a compiled query takes exactly {sorted(self.kinds)}")
        compiled = self._compiled
        if compiled is None:
            with self._lock:
                compiled = self._compiled = self._compiled or self._compile()
        sql, slots = compiled
        bound = {name: _bound(kind, values[name]) for name, kind in self.kinds.items()}
        return sql, [bound[name] if name is not None else const for name, const in slots]

    def rows(self, **values: Any) -> list[tuple]:
        """The query's rows as the database returns them (values_list's tuples; no model
        instances, no field converters: compile only queries of plain columns). Planned on
        every run, as the ORM's queries are: ranking's depend on their lists' sizes (a
        viewer following five authors or five thousand), which one generic plan would not
        follow."""
        sql, params = self.bind(**values)
        return fetchall(sql, params, prepare=False)

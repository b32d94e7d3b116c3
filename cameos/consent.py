"""The one place that decides whether someone may put a cameo in a video.

`cameo_can_use(user, cameo)` answers for one cameo, `cameos_for_use(user, ids)` for several at
once (admission: every cameo of a request in one query), and `usable_cameos(user)` lists every
cameo the user may use. All evaluate the same SQL rule (`consent_reason`), so the answers can
never disagree, and each costs one query however many cameos it asks about.

The answer is always read from the database: nothing here caches a decision, so a revoked
grant, a block or a cameo going inactive counts on the very next check. What is kept is only
the work of turning the rule into a plan: the SQL text Django compiles from `consent_reason`
(per process and number of ids) and PostgreSQL's plan for it (a prepared statement per pooled
connection, config.core.sql). Compiling and planning that CASE with its four EXISTS
subqueries cost several times what running it does.

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

import threading
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models import Case, CharField, Exists, OuterRef, Q, QuerySet, Value, When
from django.utils.functional import cached_property

from accounts.models import Block, Follow
from config.core.sql import fetchall

from .models import Audience, Cameo, CameoGrant, CameoStatus

ALLOW_REASONS = frozenset({"owner", "granted", "everyone", "mutual"})


@dataclass(frozen=True)
class ConsentDecision:
    allowed: bool
    reason: str

    def __bool__(self) -> bool:
        return self.allowed


NOT_FOUND = ConsentDecision(False, "not_found")
ANONYMOUS = ConsentDecision(False, "anonymous")


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
        return ANONYMOUS
    return cameo_decisions(user, [cameo.pk]).get(cameo.pk, NOT_FOUND)


def cameo_decisions(user, cameo_ids: Iterable[Any]) -> dict[Any, ConsentDecision]:
    """`cameo_can_use` for several cameos in one query: {id: decision} for every id that exists
    (a missing id is absent: the caller answers it like `not_found`)."""
    ids = list(dict.fromkeys(cameo_ids))
    if not ids:
        return {}
    if user is None or not getattr(user, "is_authenticated", False):
        return dict.fromkeys(ids, ANONYMOUS)
    sql, params = _CONSENT_SQL.bind(user.pk, ids, rows=False)
    return {
        pk: ConsentDecision(reason in ALLOW_REASONS, reason) for pk, reason in fetchall(sql, params)
    }


def cameos_for_use(user, cameo_ids: Iterable[Any]) -> dict[Any, tuple[Cameo, ConsentDecision]]:
    """The cameos with these ids, each with `cameo_can_use`'s decision, in one query (admission
    loads and checks a request's cameos together). A missing id is absent from the answer.

    The cameos come back as `.only()` would give them: every plain column loaded, the JSON
    ones (recording facts, reference frames, verification) deferred until first read."""
    ids = list(dict.fromkeys(cameo_ids))
    if not ids:
        return {}
    if user is None or not getattr(user, "is_authenticated", False):
        return {c.pk: (c, ANONYMOUS) for c in Cameo.objects.filter(pk__in=ids)}
    sql, params = _CONSENT_SQL.bind(user.pk, ids, rows=True)
    names = _CONSENT_SQL.columns
    found: dict[Any, tuple[Cameo, ConsentDecision]] = {}
    for *values, reason in fetchall(sql, params):
        cameo = Cameo.from_db(DEFAULT_DB_ALIAS, names, values)
        found[cameo.pk] = (cameo, ConsentDecision(reason in ALLOW_REASONS, reason))
    return found


class _CompiledConsent:
    """The SQL of `consent_reason` over `WHERE id IN (n ids)`, compiled once per process and
    per n, with the slots where the caller's id and the cameo ids go. Compiled with sentinel
    UUIDs that no row has; every other parameter is a constant of the rule. The text depends
    only on the code of `consent_reason`, never on data, so it can't go stale."""

    USER = uuid.UUID(int=(1 << 127) | 0xC0_45E7)

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._compiled: dict[tuple[int, bool], tuple[str, tuple]] = {}

    @cached_property
    def columns(self) -> list[str]:
        """The cameo columns `cameos_for_use` loads: those the database hands back ready to use
        (no converter: not the JSON ones), in model order."""
        connection = connections[DEFAULT_DB_ALIAS]
        return [
            f.attname
            for f in Cameo._meta.concrete_fields
            if not f.get_db_converters(connection) and not connection.ops.get_db_converters(f)
        ]

    def _compile(self, n: int, rows: bool) -> tuple[str, tuple]:
        ids = [uuid.UUID(int=(1 << 126) | i) for i in range(n)]

        class Sentinel:
            pk = self.USER

        columns = self.columns if rows else ["pk"]
        query = (
            Cameo.objects.filter(pk__in=ids)
            .annotate(consent_reason=consent_reason(Sentinel))
            .values_list(*columns, "consent_reason")
            .query
        )
        sql, params = query.get_compiler(DEFAULT_DB_ALIAS).as_sql()
        position = {value: i for i, value in enumerate(ids)}
        slots = []
        for value in params:
            if value == self.USER:
                slots.append(("user", None))
            elif isinstance(value, uuid.UUID) and value in position:
                slots.append(("id", position[value]))
            else:
                slots.append(("const", value))
        if sum(1 for kind, _ in slots if kind == "id") != n:
            raise RuntimeError("consent SQL: the cameo ids did not compile as one parameter each")
        return sql, tuple(slots)

    def bind(self, user_id, ids: list, *, rows: bool) -> tuple[str, list]:
        key = (len(ids), rows)
        compiled = self._compiled.get(key)
        if compiled is None:
            with self._lock:
                compiled = self._compiled.get(key) or self._compile(*key)
                self._compiled[key] = compiled
        sql, slots = compiled
        ids = [Cameo._meta.pk.to_python(value) for value in ids]
        params = [
            user_id if kind == "user" else ids[value] if kind == "id" else value
            for kind, value in slots
        ]
        return sql, params


_CONSENT_SQL = _CompiledConsent()


def usable_cameos(user) -> QuerySet[Cameo]:
    """Every cameo `user` may use, annotated with `consent_reason`."""
    if user is None or not getattr(user, "is_authenticated", False):
        return Cameo.objects.none()
    return (
        Cameo.objects.annotate(consent_reason=consent_reason(user))
        .filter(consent_reason__in=ALLOW_REASONS)
        .select_related("owner")
    )

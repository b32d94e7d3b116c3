"""Hot reads as prepared statements.

Django's PostgreSQL backend binds parameters on the client and never prepares, so PostgreSQL
plans every query again. For the few statements every request runs (the bearer-token lookup,
a feed page), planning cost more than executing: a feed page planned in ~4 ms and ran in ~1 ms
(docs/bench-feed.md). `fetchall` runs such a statement through psycopg's server-side binding
with `prepare=True`, so each pooled connection plans it once. (PostgreSQL tries five custom
plans, then keeps a generic one when it costs no more: a value the generic plan can't cost
well, such as a bound `LIMIT`, keeps every execution planned anew; feed.hydrate writes its
page limit into the statement for that reason.)

Prepared statements live on one connection; poolers that multiplex transactions over server
connections (PgBouncer before 1.21 in transaction mode) can't follow them: set
`DATABASE_PREPARE=0` there and the same statements run unprepared (docs/operations.md).
Statements still appear in `connection.queries` (DEBUG, and the query-count tests).
"""

from __future__ import annotations

import time
from typing import Any

import psycopg
from django.db import connection

# psycopg's own timestamptz loader, the C one with psycopg[binary].
_TIMESTAMPTZ_LOADER = psycopg.adapters.get_loader(
    psycopg.adapters.types["timestamptz"].oid, psycopg.pq.Format.TEXT
)


def _cursor(raw: psycopg.Connection) -> psycopg.Cursor:
    """A cursor that reads timestamps with psycopg's C loader. Django registers a Python
    subclass of it on every connection (to set the zone of the result to the connection's,
    which is the session's already: both UTC), and on a feed page's 42 timestamps that
    subclass cost more than the rest of the rows' decoding (434 against 173 us of client CPU
    per page at 200k posts). The instants are the same; the tzinfo is the session's zone."""
    cursor = psycopg.Cursor(raw)
    cursor.adapters.register_loader("timestamptz", _TIMESTAMPTZ_LOADER)
    return cursor


def fetchall(sql: str, params: dict[str, Any] | list[Any], *, prepare: bool = True) -> list[tuple]:
    """Rows of `sql` (psycopg placeholders: `%s` or `%(name)s`) on Django's connection, inside
    whatever transaction is open there. `prepare=False`: planned on every run, as Django's own
    queries are (for statements whose best plan depends on their values: a generic plan is
    costed for no value in particular)."""
    connection.ensure_connection()
    if connection.in_atomic_block:
        connection.validate_no_broken_transaction()
    raw = connection.connection
    # None: prepared statements are off for this database (settings, DATABASE_PREPARE).
    prepare = prepare and raw.prepare_threshold is not None
    started = time.monotonic()
    # One server-binding cursor per connection, reused: a new cursor copies the connection's
    # adapters map, which showed in the profile.
    cursor = getattr(raw, "_riff_cursor", None)
    if cursor is None or cursor.closed:
        cursor = raw._riff_cursor = _cursor(raw)
    with connection.wrap_database_errors:
        cursor.execute(sql, params, prepare=prepare)
        rows = cursor.fetchall()
    if connection.queries_logged:
        connection.queries_log.append(
            {"sql": sql, "time": f"{time.monotonic() - started:.3f}", "params": params}
        )
    return rows

"""Fewer round trips on admission's hot path: several statements sent in one go.

Every statement here is what the ORM itself would send (compiled by Django's own compilers)
or plain SQL over names taken from the models; only the transport changes. With Django's
default psycopg 3 cursor (client-side parameter binding) several statements travel in one
simple-query message and PostgreSQL runs them in order, each with its own snapshot under READ
COMMITTED: a `SELECT ... FOR UPDATE` followed by a count sees every row committed before the
lock was granted, exactly as two separate calls would. With server-side binding
(`OPTIONS["server_side_binding"]`) one message can't carry several statements, so they are
sent one by one: same results, more round trips.
"""

from __future__ import annotations

from collections.abc import Sequence

from django.db import connections
from django.db.models import Model
from django.db.models.sql import InsertQuery

Statement = tuple[str, Sequence]


def run_together(statements: Sequence[Statement], *, using: str = "default") -> list[list]:
    """Runs the statements in order, in one round trip where the driver allows; returns each
    one's rows ([] for a statement that returns none). An error in any statement raises, and
    the statements after it don't run (inside a transaction, the caller's atomic block rolls
    everything back)."""
    connection = connections[using]
    results: list[list] = []
    with connection.cursor() as cursor:
        if connection.settings_dict.get("OPTIONS", {}).get("server_side_binding"):
            for sql, params in statements:
                cursor.execute(sql, params)
                results.append(cursor.fetchall() if cursor.description else [])
            return results
        cursor.execute(
            "; ".join(sql for sql, _ in statements), [p for _, ps in statements for p in ps]
        )
        while True:
            results.append(cursor.fetchall() if cursor.description else [])
            if not cursor.nextset():
                break
    if len(results) != len(statements):
        raise RuntimeError(f"expected {len(statements)} results, got {len(results)}")
    return results


def insert_statement(objs: Sequence[Model], *, using: str = "default") -> Statement:
    """The INSERT `Model.save()` (one object) or `bulk_create` (several, same model) would send
    for new objects, without RETURNING: database-generated keys (an AutoField) stay unset on
    the objects, so use it where nothing reads them. Marks the objects as saved."""
    model = type(objs[0])
    opts = model._meta
    fields = [f for f in opts.local_concrete_fields if f is not opts.auto_field]
    query = InsertQuery(model)
    query.insert_values(fields, objs, raw=False)
    (statement,) = query.get_compiler(using=using).as_sql()
    for obj in objs:
        obj._state.adding = False
        obj._state.db = using
    return statement

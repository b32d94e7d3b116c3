"""Fewer round trips on admission's hot path: several statements sent in one go.

Every statement here is what the ORM itself would send (compiled by Django's own compilers;
several new rows as one VALUES list, `insert_statement`) or plain SQL over names taken from the
models; only the transport changes. With Django's default psycopg 3 cursor (client-side
parameter binding) several statements travel in one simple-query message and PostgreSQL runs
them in order, each with its own snapshot under READ COMMITTED: a `SELECT ... FOR UPDATE`
followed by a count sees every row committed before the lock was granted, exactly as two
separate calls would. With server-side binding
(`OPTIONS["server_side_binding"]`) one message can't carry several statements, so they are
sent one by one: same results, more round trips.
"""

from __future__ import annotations

import functools
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
    """The INSERT `Model.save()` (one object) would send for new objects, several objects as
    rows of one VALUES list, without RETURNING: database-generated keys (an AutoField) stay
    unset on the objects, so use it where nothing reads them. Marks the objects as saved.

    The one-row text is the compiler's, compiled once per model and database; each call only
    computes the parameters the way the compiler does (`pre_save`, then `get_db_prep_save`).
    Django compiling the job's INSERT was 7 % of an admission's CPU. Several rows go as VALUES
    rows rather than the ORM's UNNEST arrays (`bulk_create` on PostgreSQL): with client-side
    binding, quoting arrays cost more than UNNEST saves PostgreSQL in planning a few rows.
    Values that are expressions, and fields with placeholders of their own, go through the
    compiler every time. tests/generation/test_batch.py holds both paths to the compiler."""
    model = type(objs[0])
    fields = _insert_fields(model)
    statement = _from_kept_text(model, fields, objs, using)
    if statement is None:
        statement = _compiled(model, fields, objs, using)
    for obj in objs:
        obj._state.adding = False
        obj._state.db = using
    return statement


def _from_kept_text(model, fields: list, objs: Sequence[Model], using: str) -> Statement | None:
    """The statement on the model's kept one-row text, None when it can't serve (an expression
    among the values, a model whose text depends on them)."""
    sql = _one_row_sql(model, using)
    if sql is None:
        return None
    rows = [[f.pre_save(obj, True) for f in fields] for obj in objs]
    if any(hasattr(v, "resolve_expression") for row in rows for v in row):
        return None
    connection = connections[using]
    if len(objs) > 1:
        sql += (", (" + ", ".join(["%s"] * len(fields)) + ")") * (len(objs) - 1)
    params = tuple(
        f.get_db_prep_save(v, connection) for row in rows for f, v in zip(fields, row, strict=True)
    )
    return sql, params


@functools.cache
def _insert_fields(model: type[Model]) -> list:
    opts = model._meta
    return [f for f in opts.local_concrete_fields if f is not opts.auto_field]


def _compiled(model: type[Model], fields: list, objs: Sequence[Model], using: str) -> Statement:
    query = InsertQuery(model)
    query.insert_values(fields, objs, raw=False)
    (statement,) = query.get_compiler(using=using).as_sql()
    return statement


@functools.cache
def _one_row_sql(model: type[Model], using: str) -> str | None:
    """The compiler's INSERT of one object of `model`, ending in its VALUES row of plain
    placeholders; None where the text may depend on the values (a field with a placeholder of
    its own, or a default that is an expression)."""
    fields = _insert_fields(model)
    if any(hasattr(f, "get_placeholder") for f in fields):
        return None
    template = model()
    sql, params = _compiled(model, fields, [template], using)
    row = "VALUES (" + ", ".join(["%s"] * len(fields)) + ")"
    if len(params) != len(fields) or not sql.endswith(row):
        return None
    return sql

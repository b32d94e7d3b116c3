"""Getting rows into PostgreSQL fast: text-format COPY in chunks, one transaction per table.

COPY bypasses Django entirely (defaults, `save()`, constraints checked only by the database),
so every writer names its columns and `copy_table` refuses to start when a NOT NULL column is
left out, instead of failing half-way through a million rows.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from django.db import connection, models
from tqdm import tqdm

# Rows per COPY block: big enough to amortise the round trip, small enough to stay in memory.
CHUNK = 100_000
# How the text COPY format spells NULL and booleans.
NULL = "\\N"
TRUE, FALSE = "t", "f"


def boolean(value: bool) -> str:
    return TRUE if value else FALSE


@dataclass
class SeedReport:
    rows: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def total_rows(self) -> int:
        return sum(self.rows.values())

    @property
    def total_seconds(self) -> float:
        return sum(self.seconds.values())


def check_columns(model: type[models.Model], columns: list[str]) -> None:
    """Raises when `columns` leaves out a NOT NULL column of `model` (other than an auto id)."""
    missing = [
        f.column
        for f in model._meta.concrete_fields
        if f.column not in columns and not f.null and not (f.primary_key and f.column == "id")
    ]
    if missing:
        raise RuntimeError(f"{model._meta.db_table}: COPY misses NOT NULL columns {missing}")


def _chunks(n: int, build: Callable[[int, int], str]) -> Iterator[tuple[str, int]]:
    for start in range(0, n, CHUNK):
        stop = min(n, start + CHUNK)
        yield build(start, stop), stop - start


def copy_table(
    model: type[models.Model],
    columns: list[str],
    total: int,
    block: Callable[[int, int], str],
    report: SeedReport,
    *,
    quiet: bool,
) -> None:
    """COPYs `total` rows into `model`'s table in one transaction. `block(a, b)` returns rows
    a..b-1 as tab-separated lines (in `columns` order) joined by newlines."""
    check_columns(model, columns)
    table = model._meta.db_table
    connection.ensure_connection()
    pg = connection.connection
    started = time.monotonic()
    sql = f"COPY {table} ({', '.join(columns)}) FROM STDIN"
    with (
        tqdm(total=total, desc=f"{table:<22}", unit="row", unit_scale=True, disable=quiet) as bar,
        pg.transaction(),
        pg.cursor() as cur,
        cur.copy(sql) as copy,
    ):
        for text, n in _chunks(total, block):
            if n:
                copy.write(text + "\n")
                bar.update(n)
    report.rows[table] = report.rows.get(table, 0) + total
    report.seconds[table] = report.seconds.get(table, 0.0) + time.monotonic() - started


def analyze(tables: list[type[models.Model]], report: SeedReport) -> None:
    """Fresh planner statistics: the benchmark's queries are planned against the new sizes."""
    started = time.monotonic()
    with connection.cursor() as cur:
        for model in tables:
            cur.execute(f"ANALYZE {model._meta.db_table}")
    report.seconds["analyze"] = time.monotonic() - started

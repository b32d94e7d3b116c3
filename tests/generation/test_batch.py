"""generation.batch.insert_statement: the INSERT the compiler makes, with its text compiled once
per model, several rows as one VALUES list; expressions still compiled."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from django.db.models.functions import Now

from generation import batch
from generation.batch import insert_statement, run_together
from generation.models import Generation, GenerationCameo

pytestmark = pytest.mark.django_db

WHEN = datetime(2026, 12, 7, 9, 30, tzinfo=UTC)


def _job(owner, **values) -> Generation:
    fields = dict(id=uuid.UUID(int=7), owner=owner, prompt="a red ball", seed=42, created_at=WHEN)
    return Generation(**{**fields, **values})


def _links(job, cameos) -> list[GenerationCameo]:
    return [
        GenerationCameo(generation=job, cameo=c, instructions_version=3 + i, position=i)
        for i, c in enumerate(cameos)
    ]


def _compiler(objs) -> tuple:
    """What Django's own compiler makes of the same objects."""
    model = type(objs[0])
    return batch._compiled(model, batch._insert_fields(model), objs, "default")


def test_one_row_is_the_compilers_own_statement(user):
    first = insert_statement([_job(user)])
    assert first == _compiler([_job(user)])
    again = insert_statement([_job(user, prompt="a blue ball", seed=7)])
    assert again == _compiler([_job(user, prompt="a blue ball", seed=7)])
    assert again[0] == first[0] and again[1] != first[1]


def test_several_rows_are_the_one_row_statement_with_more_values_rows(user, other, active_cameo):
    cameos = [active_cameo(other), active_cameo(other), active_cameo(other)]
    job = _job(user)
    one_sql, _ = _compiler(_links(job, cameos[:1]))
    for count in (2, 3):
        sql, params = insert_statement(_links(job, cameos[:count]))
        row = "(" + ", ".join(["%s"] * 4) + ")"
        assert sql == one_sql + f", {row}" * (count - 1)
        # Each row's parameters, in the compiler's order, one row after the other.
        assert params == tuple(
            p for link in _links(job, cameos[:count]) for p in _compiler([link])[1]
        )
        assert "UNNEST" not in sql


def test_an_expression_goes_through_the_compiler(user):
    plain = insert_statement([_job(user)])
    made = insert_statement([_job(user, dispatched_at=Now())])
    assert made == _compiler([_job(user, dispatched_at=Now())])
    assert "STATEMENT_TIMESTAMP()" in made[0] and made[0] != plain[0]
    # A plain job after it is back on the kept text.
    assert insert_statement([_job(user)]) == plain


def test_rows_written_read_back_as_given(user, other, active_cameo):
    cameos = [active_cameo(other), active_cameo(other)]
    warm = _job(user, id=uuid.uuid4())
    run_together([insert_statement([warm]), insert_statement(_links(warm, cameos))])
    job = _job(user, id=uuid.uuid4(), prompt="ünïcode ✓ 'quoted'", seed=2**40, size="512x910")
    links = _links(job, cameos)
    run_together([insert_statement([job]), insert_statement(links)])
    assert not job._state.adding and all(not link._state.adding for link in links)
    row = Generation.objects.get(pk=job.pk)
    assert (row.owner_id, row.prompt, row.seed, row.size, row.created_at, row.status) == (
        user.pk,
        "ünïcode ✓ 'quoted'",
        2**40,
        "512x910",
        WHEN,
        "queued",
    )
    assert list(
        GenerationCameo.objects.filter(generation=job)
        .order_by("position")
        .values_list("cameo_id", "instructions_version", "position")
    ) == [(cameos[0].pk, 3, 0), (cameos[1].pk, 4, 1)]

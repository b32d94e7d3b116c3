"""Fixtures of the rights tests: a rights holder with a blocked and a licensed character."""

from __future__ import annotations

import pytest

from tests.conftest import client_for

COMET = {
    "name": "Captain Comet",
    "aliases": ["The Comet Kid"],
    "description": "A teenage space pilot in a silver flight suit with a glowing orange "
    "comet emblem on the chest, who rides a jet-powered skateboard between asteroids.",
    "policy": "blocked",
}
MOTH = {
    "name": "Moth Lady",
    "aliases": ["Madame Moth"],
    "description": "A gentle giant moth with velvet grey wings who runs a night bakery.",
    "policy": "licensed",
    "share_bps": 1500,
}


@pytest.fixture
def staff(make_user):
    return client_for(make_user(username="staffer", is_staff=True))


@pytest.fixture
def studio(make_user, staff):
    """A holder with two members (ana, ben) and a blocked and a licensed character."""
    ana, ben = make_user(username="ana"), make_user(username="ben")
    response = staff.post(
        "/api/v1/rights/holders",
        {"name": "Orbit Studios", "members": ["ana", "ben"]},
        format="json",
    )
    assert response.status_code == 201, response.content
    holder_id = response.json()["id"]
    api = client_for(ana)
    comet = api.post("/api/v1/rights/assets", {"holder_id": holder_id, **COMET}, format="json")
    moth = api.post("/api/v1/rights/assets", {"holder_id": holder_id, **MOTH}, format="json")
    assert comet.status_code == moth.status_code == 201, (comet.content, moth.content)
    return {
        "holder_id": holder_id,
        "ana": ana,
        "ben": ben,
        "comet": comet.json(),
        "moth": moth.json(),
    }

"""The OpenAPI schema states the limits the server enforces (schemathesis ST202: input the schema
calls valid must not be refused for a rule the schema does not mention)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accounts.names import validate_name
from tests.helpers import assert_error

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def schema(django_db_blocker):
    from rest_framework.test import APIClient

    with django_db_blocker.unblock():
        response = APIClient().get("/api/schema/?format=json")
    assert response.status_code == 200
    return response.json()


def parameter(schema, path, name, method="get"):
    for candidate in schema["paths"][path][method].get("parameters", []):
        if candidate["name"] == name and candidate["in"] == "query":
            return candidate["schema"]
    raise AssertionError(f"{method.upper()} {path} has no query parameter {name!r}")


def component(schema, name):
    return schema["components"]["schemas"][name]


def _is_list(operation, schema):
    ref = (
        operation.get("responses", {})
        .get("200", {})
        .get("content", {})
        .get("application/json", {})
        .get("schema", {})
        .get("$ref", "")
    )
    properties = component(schema, ref.rsplit("/", 1)[-1]).get("properties", {}) if ref else {}
    return "results" in properties and "next" in properties


def test_every_list_states_limit_at_least_one(schema):
    lists = [
        path
        for path, item in schema["paths"].items()
        if "get" in item and _is_list(item["get"], schema)
    ]
    for path in (
        "/api/v1/notifications",
        "/api/v1/users/{username}/followers",
        "/api/v1/feed",
        "/api/v1/posts/{post_id}/lineage",
    ):
        assert path in lists
    for path in lists:
        assert parameter(schema, path, "limit") == {"type": "integer", "minimum": 1}, path
        assert parameter(schema, path, "cursor")["type"] == "string", path


def test_limit_zero_is_what_the_schema_forbids(api):
    assert_error(api.get("/api/v1/notifications?limit=0"), 400, "invalid", "limit")
    assert api.get("/api/v1/notifications?limit=1").status_code == 200


def test_tree_depth_is_bounded(schema):
    depth = parameter(schema, "/api/v1/posts/{post_id}/tree", "depth")
    assert depth == {"type": "integer", "minimum": 1, "maximum": 10}


@pytest.mark.parametrize(
    "schema_name,field", [("RegisterInRequest", "username"), ("CameoCreateInRequest", "handle")]
)
def test_names_carry_the_server_rules(schema, schema_name, field):
    rules = component(schema, schema_name)["properties"][field]
    assert rules["minLength"] == 3
    assert rules["maxLength"] == 30
    assert rules["pattern"]


def test_steer_has_its_max_length(schema):
    assert component(schema, "FeedPreferencesInRequest")["properties"]["steer"]["maxLength"] == 500


def test_self_follow_refusal_is_documented(schema, api, user):
    responses = schema["paths"]["/api/v1/users/{username}/follow"]["post"]["responses"]
    assert "400" in responses
    assert "cannot_follow_self" in responses["400"]["description"]
    assert_error(api.post(f"/api/v1/users/{user.username}/follow"), 400, "cannot_follow_self")


@pytest.fixture(scope="module")
def name_pattern(schema):
    return re.compile(component(schema, "RegisterInRequest")["properties"]["username"]["pattern"])


NAME_ALPHABET = "abzAZ09._-é "


@settings(max_examples=400, deadline=None)
@given(raw=st.text(alphabet=NAME_ALPHABET, max_size=34))
def test_name_pattern_matches_validate_name(name_pattern, raw):
    """For names spelled in ASCII, the schema's length + pattern accept exactly what
    validate_name accepts, reserved words (a list, not a pattern) aside."""
    if raw != raw.strip() or not raw.isascii():
        return  # trimmed / case-folded by the server first: outside the canonical form
    schema_ok = 3 <= len(raw) <= 30 and bool(name_pattern.search(raw))
    error = validate_name(raw)
    assert schema_ok == (error is None or error == "This name is reserved."), (raw, error)


@pytest.mark.parametrize("name", ["a._b", "a_.b", "x.y_z", "abc", "A1b"])
def test_names_the_pattern_accepts_register(anon, name, name_pattern):
    from accounts.services import invite_mint

    assert name_pattern.search(name)
    invite = invite_mint(created_by=None)
    body = {
        "username": name,
        "email": "n@example.com",
        "password": "a long enough secret",
        "invite_code": invite.code,
        "birth_date": "1998-04-02",
    }
    assert anon.post("/api/v1/auth/register", body, format="json").status_code == 201

"""Schemathesis over the whole OpenAPI schema, authenticated, every operation.

Each operation gets generated requests; none may answer 5xx and every response must match the
schema (status code, content type, body). New endpoints are picked up automatically.
"""

from __future__ import annotations

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from schemathesis.checks import load_all_checks
from schemathesis.specs.openapi.checks import positive_data_acceptance

from tests.factories import UserFactory, token_for

load_all_checks()


@pytest.fixture
def api_schema(db):
    # Like Django's test client: keep the test's connection (and transaction) open across
    # requests instead of closing it when each request finishes.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield schemathesis.openapi.from_wsgi("/api/schema/", get_wsgi_application())
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


schema = schemathesis.pytest.from_fixture("api_schema")


@pytest.fixture
def fuzz_user(db):
    return UserFactory(username="fuzzer")


@schema.parametrize()
@settings(
    max_examples=12,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_every_operation_conforms(case, fuzz_user):
    # A fresh token per example: logout / logout-all / DELETE /me may revoke the previous one.
    user = fuzz_user
    if case.method.upper() == "DELETE" and case.path == "/api/v1/me":
        user = UserFactory()
    case.call_and_validate(
        headers={"Authorization": f"Bearer {token_for(user)}"},
        # Business rules (invite codes, reserved names) refuse much schema-valid input by design.
        excluded_checks=[positive_data_acceptance],
    )

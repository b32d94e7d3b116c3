"""Schemathesis over the whole OpenAPI schema, authenticated, every operation.

Each operation gets generated requests; none may answer 5xx and every response must match the
schema (status code, content type, body). New endpoints are picked up automatically. Both tests
run with DEBUG off, as production does (DEBUG turns some refusals into HTML debug pages).

Generated data rarely hits the hostile corners (forged cursors, deeply nested JSON, NUL bytes,
declared-huge uploads), so a second test walks the same schema and sends those to every
operation that takes them.
"""

from __future__ import annotations

import uuid

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from schemathesis.checks import load_all_checks
from schemathesis.specs.openapi.checks import positive_data_acceptance

from tests.factories import UserFactory, token_for
from tests.test_hostile_input import HOSTILE_CURSORS

load_all_checks()


@pytest.fixture
def production_debug(settings):
    settings.DEBUG = False
    yield
    assert settings.DEBUG is False


@pytest.fixture
def api_schema(db, production_debug):
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


def _operations(client) -> list[tuple[str, str, dict]]:
    schema = client.get("/api/schema/", {"format": "json"}).json()
    return [
        (method.upper(), path, operation)
        for path, item in schema["paths"].items()
        for method, operation in item.items()
        if method in {"get", "post", "put", "patch", "delete"}
    ]


def _fill(path: str, operation: dict, username: str) -> tuple[str, bool]:
    """`path` with its parameters filled: uuids get a fresh (missing) one, names the caller's.
    The flag says whether an object must exist (a 404 then comes before anything else)."""
    lookups = False
    for param in operation.get("parameters", []):
        if param["in"] != "path":
            continue
        if param["schema"].get("format") == "uuid":
            value, lookups = str(uuid.uuid4()), True
        else:
            value = username
        path = path.replace("{" + param["name"] + "}", value)
    return path, lookups


def test_every_operation_refuses_hostile_input_without_5xx(fuzz_user, production_debug):
    from rest_framework.test import APIClient

    user_client = APIClient()
    user_client.credentials(HTTP_AUTHORIZATION=f"Bearer {token_for(fuzz_user)}")
    # The moderation API answers 403 to anyone without a role before it reads the input:
    # send the hostile input there as a moderation admin, so it reaches the parsing.
    moderator = UserFactory(username="fuzzmod", is_staff=True, is_superuser=True)
    staff_client = APIClient()
    staff_client.credentials(HTTP_AUTHORIZATION=f"Bearer {token_for(moderator)}")
    client = user_client
    deep = "[" * 50_000 + "]" * 50_000
    failures: list[tuple] = []
    checked = {"cursor": 0, "json": 0, "multipart": 0, "nul": 0}

    def expect(response, allowed: set[int], what: str, path: str) -> None:
        body = response.json() if response.get("Content-Type") == "application/json" else {}
        if response.status_code not in allowed or "error" not in body:
            failures.append((what, path, response.status_code, str(body)[:160]))

    for method, template, operation in _operations(user_client):
        client = staff_client if template.startswith("/api/v1/moderation/") else user_client
        path, lookups = _fill(template, operation, fuzz_user.username)
        # A missing object may answer 404 (or 403) before the input is looked at.
        refused = {400, 403, 404} if lookups else {400}
        query = [p["name"] for p in operation.get("parameters", []) if p["in"] == "query"]
        if method == "GET" and "cursor" in query:
            for label, cursor in HOSTILE_CURSORS.items():
                response = client.get(path, {"cursor": cursor})
                expect(response, refused, f"cursor {label}", path)
                checked["cursor"] += 1
        if method == "GET":
            for name in query:
                expect(client.get(path, {name: "x\x00"}), {400}, f"NUL in {name}", path)
                checked["nul"] += 1
        content = operation.get("requestBody", {}).get("content", {})
        call = getattr(client, method.lower())
        if "application/json" in content:
            response = call(path, data=deep, content_type="application/json")
            expect(response, refused, "deep JSON", path)
            checked["json"] += 1
        if "multipart/form-data" in content:
            response = call(
                path,
                data=b"--x--",
                content_type="multipart/form-data; boundary=x",
                CONTENT_LENGTH=str(10**12),
            )
            expect(response, {413}, "declared terabyte", path)
            checked["multipart"] += 1
    assert not failures, failures
    # The walk found what it was meant to (a schema change that hid them would pass vacuously).
    assert checked["cursor"] >= 13 * len(HOSTILE_CURSORS)
    assert checked["json"] >= 10 and checked["multipart"] == 3 and checked["nul"] >= 20


# --- every documented required field is present ------------------------------------------------


@pytest.fixture
def reader(db, make_user, active_cameo, make_video_row, make_post):
    """A staff user (staff-only reads answer too) whose every read returns filled-in objects,
    and the path parameters that reach them: a post in the middle of a remix chain (so it has
    an ancestor, a remix and a comment), a cameo with a grant, an access request and an
    appearance, a draft, notifications, an invite, follows both ways."""
    from accounts.services import follow_create, invite_mint
    from cameos.services import access_request_create, cameo_grant
    from feed.services import comment_create, like_set

    me, friend = make_user(username="reader", is_staff=True), make_user(username="friend")
    cameo = active_cameo(me, handle="readers")
    cameo_grant(cameo=cameo, user=friend, granted_by=me)
    access_request_create(cameo=active_cameo(me, handle="asked"), requester=friend)
    make_video_row(friend, cameos=[cameo])  # an appearance of my cameo in a friend's draft
    root = make_post(friend, caption="root")
    middle = make_post(me, caption="middle", remix_of=root, cameos=[cameo])
    make_post(friend, caption="leaf", remix_of=middle)
    comment_create(user=friend, post=middle, body="nice")  # and a notification for me
    like_set(user=me, post=middle, liked=True)
    follow_create(follower=friend, followee=me)
    follow_create(follower=me, followee=friend)
    invite_mint(created_by=me)
    from accounts.apikeys import api_key_create

    api_key_create(user=me, name="reader's bot")
    draft = make_video_row(me)
    # A holder I am a member of, its licensed character, and a claim on my post's video.
    from rights.catalogue import AssetMatch, asset_create, holder_create
    from rights.claims import claims_record

    holder = holder_create(name="Reader Studios", members=[me])
    asset = asset_create(
        holder=holder,
        actor=me,
        data={"name": "Reader Kid", "policy": "licensed", "share_bps": 100, "aliases": ["R. Kid"]},
    )
    (claim,) = claims_record(
        video_id=middle.video_id,
        owner=me,
        matches=[AssetMatch(asset, "alias", "Reader Kid", "prompt")],
    )
    # Moderation: I hold the admin role; a friend reported my post (a ticket), I reported
    # theirs, and I appeal a label on mine.
    from django.contrib.auth.models import Group

    from moderation.services import appeal_create, event_record, report_create

    me.groups.add(Group.objects.get_or_create(name="admin")[0])
    report_create(reporter=friend, subject_type="post", subject_id=str(middle.pk), reason="spam")
    report_create(reporter=me, subject_type="post", subject_id=str(root.pk), reason="spam")
    labelled, _ = event_record(
        actor=make_user(username="labeller", is_staff=True, is_superuser=True),
        subject_type="post",
        subject_id=str(middle.pk),
        type="label",
        label="satire",
    )
    appeal_create(user=me, event_id=labelled.public_id, text="it is not satire")
    # A webhook endpoint with a delivery in its log (rows: registering would resolve the URL).
    from generation.models import WebhookDelivery, WebhookEndpoint
    from generation.webhooks.signing import secret_generate

    hook = WebhookEndpoint.objects.create(
        user=me, url="https://hooks.example/riff", events=["video.failed"], secret=secret_generate()
    )
    WebhookDelivery.objects.create(
        endpoint=hook,
        event_id="evt_reader",
        event_type="video.failed",
        payload={"id": "evt_reader", "object": "event", "type": "video.failed", "data": {}},
    )
    return me, {
        "subject_type": "post",
        "subject_id": str(middle.pk),
        "holder_id": holder.pk,
        "asset_id": asset.pk,
        "claim_id": claim.pk,
        "post_id": middle.pk,
        "cameo_id": cameo.pk,
        "video_id": draft.pk,
        "generation_id": draft.generation_id,
        "username": friend.username,
        "webhook_id": hook.pk,
    }


# Reads whose lists stay empty for this reader (nothing has earned money here yet).
MAY_BE_EMPTY = {"/api/v1/me/earnings", "/api/v1/me/payouts"}


def test_every_read_returns_every_documented_required_field(api_schema, reader):
    """Each GET in the schema, called on filled-in data: 200, and the body matches the schema,
    so every field the schema marks required is there (schemathesis's
    response_schema_conformance; the schema marks every always-present field required)."""
    from schemathesis.specs.openapi.checks import response_schema_conformance

    user, params = reader
    headers = {"Authorization": f"Bearer {token_for(user)}"}
    queries = {
        "/api/v1/feed": {"kind": "latest"},
        "/api/v1/rights/check": {"prompt": "Reader Kid waves"},
    }
    read = 0
    for path, item in api_schema.raw_schema["paths"].items():
        if "get" not in item:
            continue
        names = [p["name"] for p in item["get"].get("parameters", []) if p["in"] == "path"]
        missing = [name for name in names if name not in params]
        assert not missing, f"{path}: give the reader a value for {missing}"
        case = api_schema[path]["GET"].Case(
            path_parameters={name: str(params[name]) for name in names},
            query=queries.get(path, {}),
        )
        response = case.call(headers=headers)
        assert response.status_code == 200, (path, response.text[:300])
        case.validate_response(response, checks=[response_schema_conformance])
        body = response.json() if "json" in response.headers.get("Content-Type", "") else None
        if isinstance(body, dict) and "results" in body and path not in MAY_BE_EMPTY:
            assert body["results"], f"{path}: an empty list proves nothing about its items"
        read += 1
    assert read >= 28, read

"""Webhooks (generation.webhooks, docs/webhooks.md): Standard Webhooks signatures checked with
the `standardwebhooks` package, the SSRF guard, the endpoints API, emission from job
transitions, and single delivery attempts against real HTTP(S) servers on loopback."""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import json
import socket
import ssl
import threading
import time
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from generation.models import (
    Generation,
    GenerationStatus,
    WebhookDelivery,
    WebhookEndpoint,
)
from generation.services import jobs
from generation.services.jobs import generation_transition
from generation.webhooks import tasks as webhook_tasks
from generation.webhooks import transport, urls_guard
from generation.webhooks.delivery import (
    _claim,
    _record,
    deliveries_due,
    delivery_attempt,
    signing_secrets,
)
from generation.webhooks.services import (
    video_event_type,
    webhook_endpoint_create,
    webhook_endpoint_disable,
    webhook_event_emit,
    webhook_redeliver,
    webhook_secret_rotate,
)
from generation.webhooks.signing import secret_generate, secret_key, sign, signature_header
from generation.webhooks.urls_guard import UrlNotAllowed, vet
from tests.helpers import assert_error

pytestmark = pytest.mark.django_db

ALL_EVENTS = ["video.completed", "video.failed", "video.cancelled"]


# --- helpers: a resolver the test controls, and real receivers on loopback ---------------------


@pytest.fixture
def dns(monkeypatch):
    """The guard's resolver, answering the names in this table (others go to the real one,
    which answers numeric forms such as `127.1` without a network)."""
    table: dict[str, list[str]] = {}
    real = urls_guard.resolve_host

    def resolve(host, port):
        if host in table:
            return [ipaddress.ip_address(address) for address in table[host]]
        return real(host, port)

    monkeypatch.setattr(urls_guard, "resolve_host", resolve)
    return table


@pytest.fixture
def allow_private(settings):
    settings.RIFF_WEBHOOK_ALLOW_PRIVATE = True


def endpoint_for(user, url, events=ALL_EVENTS) -> WebhookEndpoint:
    return webhook_endpoint_create(user=user, url=url, events=list(events))


def job_of(user, status=GenerationStatus.RUNNING) -> Generation:
    return Generation.objects.create(owner=user, prompt="a red ball", seed=1, status=status)


def emitted(endpoint: WebhookEndpoint) -> WebhookDelivery:
    (delivery,) = webhook_event_emit(
        user_id=endpoint.user_id, event_type="video.completed", data={"id": "gen-1"}
    )
    return delivery


def state_of(delivery: WebhookDelivery) -> dict:
    return WebhookDelivery.objects.filter(pk=delivery.pk).values().get()


# --- signing ---------------------------------------------------------------------------------


def signed_headers(secrets, body: bytes, msg_id="evt_1", timestamp=None) -> dict:
    timestamp = int(time.time()) if timestamp is None else timestamp
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature_header(
            secrets=secrets, msg_id=msg_id, timestamp=timestamp, body=body
        ),
    }


def test_secrets_are_whsec_and_32_random_bytes():
    first, second = secret_generate(), secret_generate()
    assert first.startswith("whsec_") and first != second
    assert len(secret_key(first)) == 32
    with pytest.raises(ValueError):
        secret_key("not-a-secret")


def test_a_signature_verifies_with_the_standardwebhooks_package():
    secret = secret_generate()
    body = b'{"id":"evt_1","object":"event","created_at":1,"type":"video.completed"}'
    headers = signed_headers([secret], body)
    assert headers["webhook-signature"].startswith("v1,")
    assert Webhook(secret).verify(body, headers) == json.loads(body)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body.replace(b"completed", b"failed"), headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret_generate()).verify(body, headers)
    with pytest.raises(WebhookVerificationError):  # another message id, same body
        Webhook(secret).verify(body, {**headers, "webhook-id": "evt_2"})


def test_the_signature_is_hmac_sha256_of_id_timestamp_body():
    # A known vector, computed independently of sign(): key bytes 0..31.
    import hashlib
    import hmac

    key = bytes(range(32))
    secret = "whsec_" + base64.b64encode(key).decode()
    expected = hmac.new(key, b"msg_1.1700000000.{}", hashlib.sha256).digest()
    assert sign(secret=secret, msg_id="msg_1", timestamp=1700000000, body=b"{}") == (
        "v1," + base64.b64encode(expected).decode()
    )


def test_both_secrets_sign_during_a_rotation_and_only_the_new_one_after(
    user, allow_private, settings
):
    endpoint = endpoint_for(user, "http://127.0.0.1:9/hook")
    old = endpoint.secret
    rotated = webhook_secret_rotate(endpoint=endpoint)
    assert rotated.secret != old and rotated.previous_secret == old
    grace = timedelta(seconds=settings.RIFF_WEBHOOK_ROTATION_GRACE_SECONDS)
    assert abs(rotated.previous_secret_expires_at - (timezone.now() + grace)) < timedelta(seconds=5)
    body = b'{"id":"evt_1"}'
    during = signed_headers(signing_secrets(rotated), body)
    assert len(during["webhook-signature"].split(" ")) == 2
    for secret in (old, rotated.secret):
        Webhook(secret).verify(body, during)
    after = signed_headers(signing_secrets(rotated, now=timezone.now() + grace * 2), body)
    assert len(after["webhook-signature"].split(" ")) == 1
    Webhook(rotated.secret).verify(body, after)
    with pytest.raises(WebhookVerificationError):
        Webhook(old).verify(body, after)


# --- the SSRF guard --------------------------------------------------------------------------

REFUSED_UNLESS_ALLOWED = [
    "http://127.0.0.1/hook",
    "http://127.1/hook",
    "http://[::1]/hook",
    "http://10.1.2.3/hook",
    "http://172.16.3.4/hook",
    "http://192.168.1.1/hook",
    "http://169.254.169.254/latest/meta-data/",
    "http://[::ffff:127.0.0.1]/hook",
    "http://[::ffff:a9fe:a9fe]/hook",  # 169.254.169.254, IPv4-mapped in hex
    "http://0.0.0.0/hook",
    "http://[::]/hook",
    "http://[fc00::1]/hook",
    "http://[fe80::1]/hook",
    "http://224.0.0.1/hook",
    "http://100.64.0.1/hook",  # shared address space (CGNAT)
    "http://[2002:7f00:1::1]/hook",  # 6to4 of 127.0.0.1
    "http://[64:ff9b::a00:1]/hook",  # NAT64 of 10.0.0.1
    "http://loopback.example/hook",  # resolves to 127.0.0.1
    "http://mixed.example/hook",  # one public and one private address
    "http://localhost:8000/hook",
    "http://LOCALHOST./hook",
    "http://api.localhost/hook",
    "http://printer.local/hook",
    "http://metadata/hook",  # a single label goes through the search domains
]
ALWAYS_REFUSED = [
    "http://user:pw@hooks.example/hook",
    "http://user@hooks.example/hook",
    "file:///etc/passwd",
    "ftp://hooks.example/hook",
    "gopher://hooks.example:70/_",
    "javascript:alert(1)",
    "hooks.example/hook",
    "http:///hook",
    "http://hooks.example:0/hook",
    "http://hooks.example:99999/hook",
    "http://hooks .example/hook",
    "http://hooks.example\\@127.0.0.1/hook",
    "http://hooks.example/\x00",
    "http://hooks.example/caf\u00e9",
    "https://" + "a" * 64 + ".example/hook",
    "https://hooks.example/" + "a" * 2000,
    "",
]


@pytest.fixture
def guard_dns(dns):
    dns.update(
        {
            "loopback.example": ["127.0.0.1"],
            "mixed.example": ["93.184.215.14", "10.0.0.1"],
            "hooks.example": ["93.184.215.14"],
            "xn--bcher-kva.example": ["2606:4700:4700::1111"],
            "localhost": ["127.0.0.1"],
            "api.localhost": ["127.0.0.1"],
            "printer.local": ["192.168.1.20"],
            "metadata": ["169.254.169.254"],
        }
    )
    return dns


@pytest.mark.parametrize("url", REFUSED_UNLESS_ALLOWED)
def test_private_targets_are_refused_unless_allowed(guard_dns, settings, url):
    with pytest.raises(UrlNotAllowed):
        vet(url)
    settings.RIFF_WEBHOOK_ALLOW_PRIVATE = True
    assert vet(url).addresses


@pytest.mark.parametrize("url", ALWAYS_REFUSED)
def test_malformed_urls_are_refused_even_when_private_is_allowed(guard_dns, settings, url):
    for allowed in (False, True):
        settings.RIFF_WEBHOOK_ALLOW_PRIVATE = allowed
        with pytest.raises(UrlNotAllowed):
            vet(url)


@pytest.mark.parametrize(
    "url,host,port,path,host_header",
    [
        ("https://hooks.example/riff?x=1", "hooks.example", 443, "/riff?x=1", "hooks.example"),
        ("http://hooks.example:8080", "hooks.example", 8080, "/", "hooks.example:8080"),
        ("HTTPS://Hooks.Example./a#frag", "hooks.example", 443, "/a", "hooks.example"),
        (
            "https://b\u00fccher.example/x",
            "xn--bcher-kva.example",
            443,
            "/x",
            "xn--bcher-kva.example",
        ),
        ("https://8.8.8.8/x", "8.8.8.8", 443, "/x", "8.8.8.8"),
        (
            "https://[2606:4700:4700::1111]:8443/",
            "2606:4700:4700::1111",
            8443,
            "/",
            "[2606:4700:4700::1111]:8443",
        ),
    ],
)
def test_public_targets_are_accepted(guard_dns, url, host, port, path, host_header):
    target = vet(url)
    assert (target.host, target.port, target.path, target.host_header) == (
        host,
        port,
        path,
        host_header,
    )
    assert target.addresses and all(urls_guard.address_public(a) for a in target.addresses)


def test_a_name_that_does_not_resolve_is_refused(dns):
    with pytest.raises(UrlNotAllowed, match="does not resolve"):
        vet("https://nowhere.invalid/hook")


# --- the endpoints API -------------------------------------------------------------------------


def test_registering_returns_the_secret_once_and_lists_without_it(api, user, allow_private):
    response = api.post(
        "/api/v1/me/webhooks",
        {"url": "http://127.0.0.1:9/hook", "events": ["video.completed", "video.failed"]},
        format="json",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert set(body) == {"id", "url", "events", "secret", "created_at"}
    endpoint = WebhookEndpoint.objects.get(pk=body["id"])
    assert (body["url"], body["events"], body["secret"]) == (
        "http://127.0.0.1:9/hook",
        ["video.completed", "video.failed"],
        endpoint.secret,
    )
    assert endpoint.user == user and len(secret_key(body["secret"])) == 32
    listed = api.get("/api/v1/me/webhooks").json()
    assert listed == {
        "results": [
            {
                "id": body["id"],
                "url": body["url"],
                "events": body["events"],
                "created_at": body["created_at"],
            }
        ],
        "next": None,
    }


def test_a_private_url_is_refused_at_registration(api):
    response = api.post(
        "/api/v1/me/webhooks",
        {"url": "http://169.254.169.254/latest/meta-data/", "events": ["video.failed"]},
        format="json",
    )
    error = assert_error(response, 400, "webhook_url_not_allowed", "url")
    assert "169.254" not in error["message"]
    assert not WebhookEndpoint.objects.exists()


@pytest.mark.parametrize(
    "body,field",
    [
        ({"url": "http://127.0.0.1:9/h", "events": []}, "events"),
        ({"url": "http://127.0.0.1:9/h", "events": ["video.failed", "video.failed"]}, "events"),
        ({"url": "http://127.0.0.1:9/h", "events": ["video.started"]}, "events"),
        ({"url": "http://127.0.0.1:9/h", "events": "video.failed"}, "events"),
        ({"url": "http://127.0.0.1:9/h", "events": [1]}, "events"),
        ({"url": "http://127.0.0.1:9/h", "events": [["video.failed"]]}, "events"),
        ({"url": "http://127.0.0.1:9/h", "events": ALL_EVENTS * 2}, "events"),
        ({"url": "http://127.0.0.1:9/h"}, "events"),
        ({"events": ["video.failed"]}, "url"),
        ({"url": 5, "events": ["video.failed"]}, "url"),
        ({"url": None, "events": ["video.failed"]}, "url"),
        ({"url": ["http://127.0.0.1:9/h"], "events": ["video.failed"]}, "url"),
        ({"url": "http://127.0.0.1:9/" + "a" * 2000, "events": ["video.failed"]}, "url"),
    ],
)
def test_bad_bodies_are_400_and_create_nothing(api, allow_private, body, field):
    response = api.post("/api/v1/me/webhooks", body, format="json")
    error = assert_error(response, 400, "invalid")
    assert {name.split(".")[0] for name in error["fields"]} == {field}, error
    assert not WebhookEndpoint.objects.exists()


def test_a_nul_in_the_url_is_400(api, allow_private):
    body = {"url": "http://127.0.0.1:9/\x00", "events": ["video.failed"]}
    assert_error(api.post("/api/v1/me/webhooks", body, format="json"), 400, "invalid")
    assert not WebhookEndpoint.objects.exists()


@pytest.mark.parametrize(
    "url",
    [
        "ftp://127.0.0.1/h",
        "http://u:p@127.0.0.1/h",
        "https://\u4f8b\u5b50.\u6d4b\u8bd5/",
        "http://[::1",
    ],
)
def test_bad_urls_are_webhook_url_not_allowed(api, allow_private, url):
    response = api.post("/api/v1/me/webhooks", {"url": url, "events": ALL_EVENTS}, format="json")
    assert_error(response, 400, "webhook_url_not_allowed", "url")
    assert not WebhookEndpoint.objects.exists()


def test_the_per_user_cap_is_409(api, user, other, allow_private, settings):
    settings.RIFF_WEBHOOKS_PER_USER = 2
    endpoint_for(other, "http://127.0.0.1:9/other")  # someone else's don't count
    for i in range(2):
        body = {"url": f"http://127.0.0.1:9/{i}", "events": ["video.failed"]}
        assert api.post("/api/v1/me/webhooks", body, format="json").status_code == 201
    body = {"url": "http://127.0.0.1:9/2", "events": ["video.failed"]}
    assert_error(api.post("/api/v1/me/webhooks", body, format="json"), 409, "too_many_webhooks")
    assert WebhookEndpoint.objects.filter(user=user).count() == 2


def test_delete_rotate_and_the_log_answer_only_the_owner(api, user, other, allow_private):
    mine = endpoint_for(user, "http://127.0.0.1:9/mine")
    theirs = endpoint_for(other, "http://127.0.0.1:9/theirs")
    their_delivery = emitted(theirs)
    before = state_of(their_delivery)
    for method, path in [
        ("delete", f"/api/v1/me/webhooks/{theirs.pk}"),
        ("post", f"/api/v1/me/webhooks/{theirs.pk}/rotate"),
        ("get", f"/api/v1/me/webhooks/{theirs.pk}/deliveries"),
        ("post", f"/api/v1/me/webhooks/{theirs.pk}/deliveries/{their_delivery.pk}/redeliver"),
        # their delivery under my endpoint
        ("post", f"/api/v1/me/webhooks/{mine.pk}/deliveries/{their_delivery.pk}/redeliver"),
        ("delete", "/api/v1/me/webhooks/00000000-0000-0000-0000-000000000000"),
        ("delete", "/api/v1/me/webhooks/not-a-uuid"),
    ]:
        assert_error(getattr(api, method)(path), 404, "not_found")
    theirs_now = WebhookEndpoint.objects.get(pk=theirs.pk)
    assert (theirs_now.secret, theirs_now.previous_secret) == (theirs.secret, "")
    assert state_of(their_delivery) == before


def test_anonymous_callers_are_401(anon, user, allow_private):
    endpoint = endpoint_for(user, "http://127.0.0.1:9/h")
    assert_error(anon.get("/api/v1/me/webhooks"), 401, "not_authenticated")
    assert_error(anon.delete(f"/api/v1/me/webhooks/{endpoint.pk}"), 401, "not_authenticated")
    assert WebhookEndpoint.objects.filter(pk=endpoint.pk).exists()


def test_delete_removes_the_endpoint_and_its_log(api, user, allow_private):
    endpoint = endpoint_for(user, "http://127.0.0.1:9/h")
    emitted(endpoint)
    assert api.delete(f"/api/v1/me/webhooks/{endpoint.pk}").status_code == 204
    assert not WebhookEndpoint.objects.exists() and not WebhookDelivery.objects.exists()


def test_rotate_answers_the_new_secret(api, user, allow_private):
    endpoint = endpoint_for(user, "http://127.0.0.1:9/h")
    response = api.post(f"/api/v1/me/webhooks/{endpoint.pk}/rotate")
    assert response.status_code == 200, response.content
    body = response.json()
    endpoint_now = WebhookEndpoint.objects.get(pk=endpoint.pk)
    assert set(body) == {"id", "url", "events", "secret", "created_at"}
    assert body["secret"] == endpoint_now.secret != endpoint.secret
    assert endpoint_now.previous_secret == endpoint.secret


def test_the_delivery_log_pages_newest_first(api, user, allow_private):
    endpoint = endpoint_for(user, "http://127.0.0.1:9/h")
    first, second, third = (emitted(endpoint) for _ in range(3))
    page = api.get(f"/api/v1/me/webhooks/{endpoint.pk}/deliveries?limit=2").json()
    assert [row["id"] for row in page["results"]] == [str(third.pk), str(second.pk)]
    assert set(page["results"][0]) == {
        "id",
        "event_id",
        "event_type",
        "state",
        "attempts",
        "last_status_code",
        "last_error",
        "created_at",
        "delivered_at",
        "next_attempt_at",
    }
    rest = api.get(page["next"]).json()
    assert [row["id"] for row in rest["results"]] == [str(first.pk)] and rest["next"] is None
    row = rest["results"][0]
    assert (row["event_type"], row["state"], row["attempts"], row["last_status_code"]) == (
        "video.completed",
        "pending",
        0,
        None,
    )
    assert row["event_id"] == first.event_id and row["event_id"].startswith("evt_")


def test_redeliver_sends_the_same_event_again(
    api, user, allow_private, django_capture_on_commit_callbacks
):
    endpoint = endpoint_for(user, "http://127.0.0.1:9/h")
    delivery = emitted(endpoint)
    url = f"/api/v1/me/webhooks/{endpoint.pk}/deliveries/{delivery.pk}/redeliver"
    # Still pending: refused, unchanged.
    before = state_of(delivery)
    assert_error(api.post(url), 409, "invalid_transition")
    assert state_of(delivery) == before
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        state="succeeded", attempts=2, delivered_at=timezone.now(), next_attempt_at=None
    )
    with django_capture_on_commit_callbacks() as queued:
        response = api.post(url)
    assert response.status_code == 202, response.content
    body = response.json()
    assert (body["id"], body["event_id"], body["state"], body["attempts"]) == (
        str(delivery.pk),
        delivery.event_id,
        "pending",
        0,
    )
    assert body["delivered_at"] is None and body["next_attempt_at"] is not None
    assert len(queued) == 1


# --- emission ----------------------------------------------------------------------------------


def test_an_event_costs_one_query_for_a_user_without_endpoints(user, other, allow_private):
    endpoint_for(other, "http://127.0.0.1:9/h")  # someone else has one
    for event_type in ("video.failed", lambda: "video.completed"):
        with CaptureQueriesContext(connection) as queries:
            assert (
                webhook_event_emit(user_id=user.pk, event_type=event_type, data={"id": "x"}) == []
            )
        assert len(queries) == 1, [q["sql"] for q in queries]
        assert "generation_webhookendpoint" in queries[0]["sql"]


@pytest.mark.parametrize("to", ["failed", "cancelled"])
def test_a_transition_adds_one_query_when_there_is_no_endpoint(user, monkeypatch, to):
    def queries_of_a_transition() -> int:
        job = job_of(user)
        with CaptureQueriesContext(connection) as queries:
            generation_transition(generation=job, to=to)
        return len(queries)

    with_webhooks = queries_of_a_transition()
    monkeypatch.setattr(jobs, "webhook_event_emit", lambda **kwargs: [])
    assert with_webhooks - queries_of_a_transition() == 1


@pytest.mark.parametrize(
    "to,video_state,event",
    [
        ("succeeded", "draft", "video.completed"),
        ("succeeded", "held", "video.failed"),
        ("failed", None, "video.failed"),
        ("cancelled", None, "video.cancelled"),
    ],
)
def test_terminal_transitions_emit_one_event_per_subscribed_endpoint(
    user,
    other,
    allow_private,
    django_capture_on_commit_callbacks,
    monkeypatch,
    to,
    video_state,
    event,
):
    sent = []
    monkeypatch.setattr("config.core.redis.publish", lambda task, *args, **o: sent.append(args[0]))
    everything = endpoint_for(user, "http://127.0.0.1:9/all")
    completed_only = endpoint_for(user, "http://127.0.0.1:9/completed", ["video.completed"])
    disabled = endpoint_for(user, "http://127.0.0.1:9/disabled")
    webhook_endpoint_disable(endpoint=disabled)
    endpoint_for(other, "http://127.0.0.1:9/other")
    job = job_of(user)
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        generation_transition(generation=job, to=to)
        if video_state:
            # A success is announced by the worker once the video exists (generation.tasks,
            # driven end to end in tests/e2e/test_webhooks_e2e.py): the transition says nothing.
            assert not WebhookDelivery.objects.exists()
            webhook_event_emit(
                user_id=user.pk,
                event_type=video_event_type(status=to, held=video_state == "held"),
                data={"id": str(job.pk)},
            )
    deliveries = list(WebhookDelivery.objects.all())
    expected = {everything.pk} | ({completed_only.pk} if event == "video.completed" else set())
    assert {d.endpoint_id for d in deliveries} == expected
    (event_id,) = {d.event_id for d in deliveries}  # one event, one id for every endpoint
    for delivery in deliveries:
        assert (delivery.event_type, delivery.state, delivery.attempts) == (event, "pending", 0)
        payload = delivery.payload
        assert payload == {
            "id": event_id,
            "object": "event",
            "created_at": payload["created_at"],
            "type": event,
            "data": {"id": str(job.pk)},
        }
        assert abs(payload["created_at"] - time.time()) < 10
    assert sorted(sent) == sorted(str(d.pk) for d in deliveries)  # one message each


def test_deliveries_are_queued_only_after_commit(
    user, allow_private, django_capture_on_commit_callbacks, monkeypatch
):
    sent = []
    monkeypatch.setattr(
        "config.core.redis.publish", lambda task, *args, **options: sent.append((task.name, args))
    )
    endpoint_for(user, "http://127.0.0.1:9/h")
    job = job_of(user)
    with django_capture_on_commit_callbacks(execute=True):
        generation_transition(generation=job, to="failed")
        assert sent == []
    (delivery,) = WebhookDelivery.objects.all()
    assert sent == [("generation.webhooks.tasks.webhook_deliver", (str(delivery.pk),))]


# --- delivery attempts against real servers ----------------------------------------------------


def test_a_delivery_is_signed_and_sent_to_the_vetted_address_with_its_host(
    user, dns, receiver, allow_private
):
    server = receiver([200])
    dns["hooks.test.example"] = ["127.0.0.1"]
    endpoint = endpoint_for(user, f"http://hooks.test.example:{server.port}/riff?x=1")
    delivery = emitted(endpoint)
    outcome = delivery_attempt(delivery_id=delivery.pk)
    assert (outcome.result, outcome.retry_in) == ("succeeded", None)
    (request,) = server.received()
    headers = request["headers"]
    assert request["path"] == "/riff?x=1"
    assert headers["host"] == f"hooks.test.example:{server.port}"
    assert headers["content-type"] == "application/json"
    assert headers["user-agent"] == "Riff-Webhooks/1"
    assert headers["webhook-id"] == delivery.event_id
    assert abs(int(headers["webhook-timestamp"]) - time.time()) < 10
    assert Webhook(endpoint.secret).verify(request["body"], headers) == delivery.payload
    assert list(json.loads(request["body"])) == ["id", "object", "created_at", "type", "data"]
    row = state_of(delivery)
    assert (row["state"], row["attempts"], row["last_status_code"], row["last_error"]) == (
        "succeeded",
        1,
        200,
        "",
    )
    assert row["last_response"] == "answered 200 \u00e9"  # NUL dropped (PostgreSQL text)
    assert row["delivered_at"] is not None and row["next_attempt_at"] is None


def test_a_rotated_endpoint_is_signed_with_both_secrets(user, receiver, allow_private):
    server = receiver([200])
    endpoint = endpoint_for(user, server.url)
    old = endpoint.secret
    endpoint = webhook_secret_rotate(endpoint=endpoint)
    delivery = emitted(endpoint)
    delivery_attempt(delivery_id=delivery.pk)
    (request,) = server.received()
    assert len(request["headers"]["webhook-signature"].split(" ")) == 2
    for secret in (old, endpoint.secret):
        Webhook(secret).verify(request["body"], request["headers"])


def test_a_failed_attempt_is_retried_after_the_next_delay(
    user, receiver, allow_private, settings, monkeypatch
):
    settings.RIFF_WEBHOOK_RETRY_DELAYS = [5, 300]
    sent = []
    monkeypatch.setattr(webhook_tasks, "publish", lambda task, *a, **o: sent.append((a, o)))
    server = receiver([500, 503, 502])
    delivery = emitted(endpoint_for(user, server.url))
    for attempt, (status, delay) in enumerate([(500, 5), (503, 300)], start=1):
        started = timezone.now()
        assert webhook_tasks.webhook_deliver(str(delivery.pk)) == "retrying"
        row = state_of(delivery)
        assert (row["state"], row["attempts"], row["last_status_code"]) == (
            "pending",
            attempt,
            status,
        )
        assert row["last_error"] == f"The endpoint answered {status}."
        due = row["next_attempt_at"] - started
        assert timedelta(seconds=delay) <= due < timedelta(seconds=delay + 5)
        assert sent[-1] == ((str(delivery.pk),), {"countdown": delay})
        # Not due yet: another message does nothing.
        assert webhook_tasks.webhook_deliver(str(delivery.pk)) == "skipped"
        WebhookDelivery.objects.filter(pk=delivery.pk).update(
            next_attempt_at=timezone.now() - timedelta(seconds=1)
        )
    assert webhook_tasks.webhook_deliver(str(delivery.pk)) == "failed"
    row = state_of(delivery)
    assert (row["state"], row["attempts"], row["last_status_code"], row["next_attempt_at"]) == (
        "failed",
        3,
        502,
        None,
    )
    assert len(server.received()) == 3 and len(sent) == 2
    assert len({r["headers"]["webhook-id"] for r in server.received()}) == 1


def test_redirects_are_not_followed(user, receiver, allow_private):
    target = receiver([200])
    server = receiver([302], location=target.url)
    delivery = emitted(endpoint_for(user, server.url))
    assert delivery_attempt(delivery_id=delivery.pk).result == "retrying"
    assert len(server.received()) == 1 and target.received() == []
    assert state_of(delivery)["last_status_code"] == 302


def test_proxies_from_the_environment_are_ignored(user, receiver, allow_private, monkeypatch):
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")
    server = receiver([200])
    delivery = emitted(endpoint_for(user, server.url))
    assert delivery_attempt(delivery_id=delivery.pk).result == "succeeded"
    assert len(server.received()) == 1


def test_a_slow_receiver_times_out(user, receiver, allow_private, settings):
    settings.RIFF_WEBHOOK_TIMEOUT_SECONDS = 0.5
    server = receiver([200], delay=3)
    delivery = emitted(endpoint_for(user, server.url))
    started = time.monotonic()
    assert delivery_attempt(delivery_id=delivery.pk).result == "retrying"
    assert time.monotonic() - started < 2
    row = state_of(delivery)
    assert (row["last_status_code"], row["last_error"]) == (None, "Timed out after 0.5 s.")


def test_a_dripping_receiver_is_cut_off_at_the_deadline(user, allow_private, settings):
    """Each byte arrives well within a socket timeout; the whole answer never does."""
    settings.RIFF_WEBHOOK_TIMEOUT_SECONDS = 0.6
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def drip():
        conn, _ = listener.accept()
        with conn:
            conn.recv(65536)
            for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 1000:
                if stop.is_set():
                    return
                try:
                    conn.sendall(bytes([byte]))
                except OSError:
                    return
                time.sleep(0.05)

    thread = threading.Thread(target=drip, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/hook"
        delivery = emitted(endpoint_for(user, url))
        started = time.monotonic()
        assert delivery_attempt(delivery_id=delivery.pk).result == "retrying"
        assert time.monotonic() - started < 2
        assert state_of(delivery)["last_error"] == "Timed out after 0.6 s."
    finally:
        stop.set()
        listener.close()


def test_a_refused_connection_is_recorded(user, allow_private):
    with socket.create_server(("127.0.0.1", 0)) as closed:
        port = closed.getsockname()[1]
    delivery = emitted(endpoint_for(user, f"http://127.0.0.1:{port}/hook"))
    assert delivery_attempt(delivery_id=delivery.pk).result == "retrying"
    assert state_of(delivery)["last_error"] == "Connection refused."


def test_a_name_rebound_to_a_private_address_is_not_sent(user, dns, receiver):
    server = receiver([200])
    dns["rebind.example"] = ["93.184.215.14"]
    endpoint = endpoint_for(user, f"http://rebind.example:{server.port}/hook")
    dns["rebind.example"] = ["127.0.0.1"]  # after registration, as a rebinding attack does
    delivery = emitted(endpoint)
    assert delivery_attempt(delivery_id=delivery.pk).result == "retrying"
    assert server.received() == []
    row = state_of(delivery)
    assert row["last_error"].startswith("Not sent: The URL's host must have public addresses")
    assert (row["state"], row["attempts"], row["last_status_code"]) == ("pending", 1, None)


def test_a_disabled_endpoint_gets_nothing(user, receiver, allow_private):
    server = receiver([200])
    endpoint = endpoint_for(user, server.url)
    delivery = emitted(endpoint)
    webhook_endpoint_disable(endpoint=endpoint)
    assert delivery_attempt(delivery_id=delivery.pk).result == "skipped"
    assert server.received() == []
    row = state_of(delivery)
    assert (row["state"], row["last_error"]) == ("failed", "The endpoint is disabled.")


def test_an_attempt_lost_with_its_worker_counts(user, receiver, allow_private, settings):
    settings.RIFF_WEBHOOK_RETRY_DELAYS = [1]
    server = receiver([200])
    delivery = emitted(endpoint_for(user, server.url))
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        attempts=2, last_error="The endpoint answered 500."
    )
    assert delivery_attempt(delivery_id=delivery.pk).result == "skipped"
    assert server.received() == []
    row = state_of(delivery)
    assert (row["state"], row["attempts"], row["last_error"]) == (
        "failed",
        2,
        "The endpoint answered 500.",
    )


def test_a_result_after_the_lease_was_taken_over_is_dropped(user, allow_private):
    delivery = emitted(endpoint_for(user, "http://127.0.0.1:9/h"))
    claim = _claim(delivery.pk)
    assert claim is not None and claim.attempt == 1
    # The lease ran out and another run claimed it again.
    WebhookDelivery.objects.filter(pk=delivery.pk).update(attempts=2)
    answer = transport.Answer(status=200, body=b"late")
    assert _record(claim, answer).result == "superseded"
    row = state_of(delivery)
    assert (row["state"], row["attempts"], row["last_response"]) == ("pending", 2, "")


def test_a_claimed_delivery_is_not_due_for_anyone_else(user, allow_private):
    delivery = emitted(endpoint_for(user, "http://127.0.0.1:9/h"))
    assert _claim(delivery.pk) is not None
    assert _claim(delivery.pk) is None
    assert state_of(delivery)["attempts"] == 1


def test_the_sweep_resends_deliveries_whose_message_was_lost(
    user, allow_private, monkeypatch, django_capture_on_commit_callbacks
):
    sent = []
    monkeypatch.setattr(webhook_tasks, "publish", lambda task, *a, **o: sent.append(a[0]))
    endpoint = endpoint_for(user, "http://127.0.0.1:9/h")
    lost, fresh, done = (emitted(endpoint) for _ in range(3))
    an_hour_ago = timezone.now() - timedelta(hours=1)
    WebhookDelivery.objects.filter(pk__in=[lost.pk, done.pk]).update(next_attempt_at=an_hour_ago)
    WebhookDelivery.objects.filter(pk=done.pk).update(state="succeeded")
    assert deliveries_due() == [lost.pk]
    assert webhook_tasks.webhook_sweep() == 1
    assert sent == [str(lost.pk)]
    assert state_of(fresh)["attempts"] == 0


# --- https: SNI and the certificate are the URL's name, the connection the vetted address ------


def _certificate_authority(tmp_path, name: str):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.UTC)

    def certificate(subject, issuer, key, signer, *, ca, san=None):
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if san:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.DNSName(san)]), critical=False
            )
        return builder.sign(signer, hashes.SHA256())

    ca_key, leaf_key = (
        ec.generate_private_key(ec.SECP256R1()),
        ec.generate_private_key(ec.SECP256R1()),
    )
    ca = certificate("Riff Test CA", "Riff Test CA", ca_key, ca_key, ca=True)
    leaf = certificate(name, "Riff Test CA", leaf_key, ca_key, ca=False, san=name)
    pem = serialization.Encoding.PEM
    (tmp_path / "ca.pem").write_bytes(ca.public_bytes(pem))
    (tmp_path / "leaf.pem").write_bytes(leaf.public_bytes(pem))
    (tmp_path / "leaf.key").write_bytes(
        leaf_key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return tmp_path / "ca.pem", tmp_path / "leaf.pem", tmp_path / "leaf.key"


@pytest.mark.parametrize("trusted", [True, False])
def test_https_sends_the_urls_name_as_sni_and_checks_the_certificate(
    user, dns, receiver, allow_private, tmp_path, monkeypatch, trusted
):
    ca, cert, key = _certificate_authority(tmp_path, "hooks.test.example")
    names = []
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(cert, key)
    server_context.sni_callback = lambda sock, name, context: names.append(name)
    server = receiver([200], tls=server_context)
    if trusted:
        monkeypatch.setattr(
            transport, "tls_context", lambda: ssl.create_default_context(cafile=str(ca))
        )
    dns["hooks.test.example"] = ["127.0.0.1"]
    delivery = emitted(endpoint_for(user, f"https://hooks.test.example:{server.port}/hook"))
    outcome = delivery_attempt(delivery_id=delivery.pk)
    assert names and names[0] == "hooks.test.example"
    if trusted:
        assert outcome.result == "succeeded"
        (request,) = server.received()
        assert request["headers"]["host"] == f"hooks.test.example:{server.port}"
    else:
        assert outcome.result == "retrying"
        assert state_of(delivery)["last_error"].startswith("TLS certificate not accepted")
        assert server.received() == []


# --- redeliver and state --------------------------------------------------------------------


def test_a_redelivery_starts_a_fresh_schedule_with_the_same_event_id(user, receiver, allow_private):
    server = receiver([200])
    delivery = emitted(endpoint_for(user, server.url))
    delivery_attempt(delivery_id=delivery.pk)
    redelivered = webhook_redeliver(delivery=delivery)
    assert (redelivered.state, redelivered.attempts, redelivered.delivered_at) == (
        "pending",
        0,
        None,
    )
    assert delivery_attempt(delivery_id=delivery.pk).result == "succeeded"
    first, second = server.received()
    assert first["headers"]["webhook-id"] == second["headers"]["webhook-id"] == delivery.event_id
    assert state_of(delivery)["attempts"] == 1


def test_the_beat_schedule_runs_the_sweep():
    from config.celery import app

    entry = app.conf.beat_schedule["webhook-sweep"]
    assert (entry["task"], entry["schedule"]) == ("generation.webhooks.tasks.webhook_sweep", 30.0)


@pytest.mark.django_db(transaction=True)
def test_a_delivery_another_run_holds_is_skipped_not_waited_for(user, receiver, allow_private):
    server = receiver([200])
    delivery = emitted(endpoint_for(user, server.url))
    outcome: list = []

    def other_run():
        try:
            outcome.append(delivery_attempt(delivery_id=delivery.pk).result)
        finally:
            connection.close()  # this thread's own connection

    with transaction.atomic():
        WebhookDelivery.objects.select_for_update().get(pk=delivery.pk)  # a run in progress
        thread = threading.Thread(target=other_run)
        thread.start()
        thread.join(timeout=10)
    assert outcome == ["skipped"] and server.received() == []
    assert state_of(delivery)["attempts"] == 0

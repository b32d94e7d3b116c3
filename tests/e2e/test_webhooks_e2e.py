"""Webhooks end to end: a real Celery worker thread delivers to real HTTP receivers on
loopback, which check every request with the `standardwebhooks` package (issue #32).

A receiver that fails the first request gets the event again (same `webhook-id`) and accepts
it exactly once; the delivery log says so; a manual redelivery sends the same id again; a
cancelled job is `video.cancelled`; an endpoint subscribed to `video.completed` alone hears
nothing of failures or cancellations."""

from __future__ import annotations

import json
import time

import pytest

from generation.models import Generation, GenerationStatus, WebhookDelivery
from generation.services.jobs import generation_cancel, generation_transition
from tests.conftest import client_for
from tests.e2e.test_cameo_verification import wait_for
from tests.factories import UserFactory
from tests.generation.test_webhooks import ALL_EVENTS
from tests.webhook_receiver import Receiver

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def webhook_settings(settings):
    settings.RIFF_WEBHOOK_ALLOW_PRIVATE = True  # the receivers listen on loopback
    settings.RIFF_WEBHOOK_RETRY_DELAYS = [1, 1, 1]
    settings.RIFF_WEBHOOK_TIMEOUT_SECONDS = 5


def register(api, receiver: Receiver, events) -> str:
    response = api.post(
        "/api/v1/me/webhooks", {"url": receiver.url, "events": events}, format="json"
    )
    assert response.status_code == 201, response.content
    receiver.secret = response.json()["secret"]
    return response.json()["id"]


def events_of(receiver: Receiver, event_type: str) -> list[dict]:
    return [
        request
        for request in receiver.received()
        if json.loads(request["body"])["type"] == event_type
    ]


def job_of(user, status=GenerationStatus.RUNNING) -> Generation:
    return Generation.objects.create(owner=user, prompt="a red ball", seed=1, status=status)


def test_events_are_delivered_signed_retried_once_and_redelivered(
    celery_worker, webhook_settings, receiver
):
    alice = UserFactory(username="alice")
    api = client_for(alice)
    main = receiver([500, 200])  # fails the first request, accepts the rest
    completed_only = receiver([200])
    main_id = register(api, main, ALL_EVENTS)
    completed_id = register(api, completed_only, ["video.completed"])

    # A generation succeeds: admitted over the API, rendered by the worker (tiny engine).
    response = api.post("/api/v1/generations", {"prompt": "a red ball bounces"}, format="json")
    assert response.status_code == 202, response.content
    job = Generation.objects.get(pk=response.json()["id"])
    assert wait_for(lambda: len(main.received()) >= 2, 30), main.received()
    first, second = main.received()[:2]
    event_id = first["headers"]["webhook-id"]
    assert (first["status"], second["status"]) == (500, 200)
    assert second["headers"]["webhook-id"] == event_id and event_id.startswith("evt_")
    assert first["verified"] is True and second["verified"] is True
    body = json.loads(second["body"])
    assert body == {
        "id": event_id,
        "object": "event",
        "created_at": body["created_at"],
        "type": "video.completed",
        "data": {"id": str(job.pk)},
    }
    # A new timestamp for each attempt, each signed.
    assert int(second["headers"]["webhook-timestamp"]) >= int(first["headers"]["webhook-timestamp"])
    assert wait_for(lambda: len(completed_only.received()) == 1, 30)
    (only,) = completed_only.received()
    assert only["verified"] is True and only["headers"]["webhook-id"] == event_id

    # The delivery log: one delivery, two attempts, succeeded; nothing more is sent.
    def log(endpoint_id: str) -> list[dict]:
        response = api.get(f"/api/v1/me/webhooks/{endpoint_id}/deliveries")
        assert response.status_code == 200, response.content
        return response.json()["results"]

    assert wait_for(lambda: log(main_id)[0]["state"] == "succeeded", 10)
    (row,) = log(main_id)
    assert (row["event_id"], row["event_type"], row["attempts"], row["last_status_code"]) == (
        event_id,
        "video.completed",
        2,
        200,
    )
    assert row["delivered_at"] is not None and row["last_error"] == ""
    time.sleep(1.5)  # longer than a retry delay: a stray retry would have arrived
    accepted = [r for r in main.received() if r["status"] == 200]
    assert len(main.received()) == 2 and len(accepted) == 1

    # A manual redelivery: the same webhook-id again.
    response = api.post(f"/api/v1/me/webhooks/{main_id}/deliveries/{row['id']}/redeliver")
    assert response.status_code == 202, response.content
    assert (response.json()["state"], response.json()["event_id"]) == ("pending", event_id)
    assert wait_for(lambda: len(main.received()) == 3, 30)
    third = main.received()[2]
    assert third["headers"]["webhook-id"] == event_id and third["verified"] is True
    assert wait_for(lambda: log(main_id)[0]["state"] == "succeeded", 10)
    assert log(main_id)[0]["attempts"] == 1

    # A cancelled job, then a failed one.
    generation_cancel(generation=job_of(alice, GenerationStatus.QUEUED))
    assert wait_for(lambda: events_of(main, "video.cancelled"), 30), main.received()
    failed = job_of(alice)
    generation_transition(
        generation=failed, to=GenerationStatus.FAILED, error_code="engine_error", error_message="x"
    )
    assert wait_for(lambda: events_of(main, "video.failed"), 30), main.received()
    (failure,) = events_of(main, "video.failed")
    assert failure["verified"] is True
    assert json.loads(failure["body"])["data"] == {"id": str(failed.pk)}

    # The completed-only endpoint: nothing was even written for the other events.
    assert list(
        WebhookDelivery.objects.filter(endpoint_id=completed_id).values_list(
            "event_type", flat=True
        )
    ) == ["video.completed"]
    assert len(completed_only.received()) == 1
    assert all(request["verified"] for request in main.received())

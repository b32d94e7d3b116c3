"""Failure modes of the worker, on the real broker, database and engine code."""

import pytest

from cameos.models import Cameo, CameoGrant
from generation.models import Generation, Video
from generation.services.jobs import (
    LostLease,
    generation_claim,
    generation_heartbeat,
    generation_transition,
)
from generation.tasks import generation_run, generation_sweep
from tests.conftest import client_for
from tests.e2e.test_cameo_verification import wait_for
from tests.factories import UserFactory

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def granted():
    alice, bob = UserFactory(username="alice"), UserFactory(username="bob")
    from cameos.services import cameo_create

    cameo = cameo_create(owner=alice, kind="object", display_name="clock", handle="alice.clock")
    Cameo.objects.filter(pk=cameo.pk).update(status="active")
    CameoGrant.objects.create(cameo=cameo, user=bob)
    return alice, bob, cameo


def test_consent_revoked_mid_run_fails_without_video(granted, settings, celery_worker):
    alice, bob, cameo = granted
    # Enough steps that the test can act while the worker is sampling.
    settings.RIFF_ENGINE_OPTIONS = {"config": "tiny", "weights": None, "steps": 400}
    job_id = (
        client_for(bob)
        .post("/api/v1/generations", {"prompt": "@alice.clock ticks"}, format="json")
        .json()["id"]
    )
    assert wait_for(lambda: Generation.objects.get(pk=job_id).progress > 0, 60)
    assert client_for(alice).delete(f"/api/v1/cameos/{cameo.pk}/grants/bob").status_code == 204
    assert wait_for(lambda: Generation.objects.get(pk=job_id).status in ("failed", "succeeded"), 60)
    job = Generation.objects.get(pk=job_id)
    assert (job.status, job.error_code) == ("failed", "cameo_consent_revoked")
    # The worker stopped at its next heartbeat; give it a moment, then: no video, ever.
    assert not wait_for(lambda: Video.objects.filter(generation_id=job_id).exists(), 3)


def test_worker_killed_mid_job_ends_exactly_once(granted, celery_worker):
    _, bob, _ = granted
    job = Generation.objects.create(owner=bob, prompt="a red ball", seed=3)
    dead = generation_claim(generation_id=job.pk)  # a worker that claims, then dies
    assert dead.status == "running" and dead.attempts == 1
    Generation.objects.filter(pk=job.pk).update(lease_expires_at="2000-01-01T00:00:00Z")
    assert generation_sweep() == {"requeued": 1, "failed": 0, "resent": 0}
    assert wait_for(lambda: Generation.objects.get(pk=job.pk).status == "succeeded", 60)
    assert Generation.objects.get(pk=job.pk).attempts == 2
    # The dead worker wakes up: every write it tries is refused, and it makes no second video.
    with pytest.raises(LostLease):
        generation_heartbeat(generation=dead, progress=0.5)
    with pytest.raises(LostLease):
        generation_transition(generation=dead, to="succeeded", attempt=dead.attempts)
    assert Video.objects.filter(generation=job).count() == 1


def test_lease_expiring_on_the_last_attempt_fails_the_job(granted, settings):
    _, bob, _ = granted
    settings.RIFF_GENERATION_MAX_ATTEMPTS = 1
    job = Generation.objects.create(owner=bob, prompt="x", seed=1)
    generation_claim(generation_id=job.pk)
    Generation.objects.filter(pk=job.pk).update(lease_expires_at="2000-01-01T00:00:00Z")
    assert generation_sweep()["failed"] == 1
    job.refresh_from_db()
    assert (job.status, job.error_code) == ("failed", "worker_lost")


def test_duplicate_delivery_makes_one_video(granted, celery_worker):
    _, bob, _ = granted
    job = Generation.objects.create(owner=bob, prompt="two blue squares fall", seed=5)
    generation_run.apply_async(args=[str(job.pk)], queue="gpu")
    generation_run.apply_async(args=[str(job.pk)], queue="gpu")
    assert wait_for(lambda: Generation.objects.get(pk=job.pk).status == "succeeded", 60)
    assert generation_run.run(str(job.pk)) == "skipped"  # a third, late delivery
    assert Video.objects.filter(generation=job).count() == 1
    assert Generation.objects.get(pk=job.pk).attempts == 1


def test_queued_job_never_dispatched_is_resent(granted, settings, celery_worker):
    _, bob, _ = granted
    settings.RIFF_DISPATCH_RESEND_AFTER = 0
    # A job committed but whose dispatch message was lost (process died after commit).
    job = Generation.objects.create(owner=bob, prompt="a green triangle", seed=9)
    Generation.objects.filter(pk=job.pk).update(created_at="2000-01-01T00:00:00Z")
    assert generation_sweep()["resent"] == 1
    assert wait_for(lambda: Generation.objects.get(pk=job.pk).status == "succeeded", 60)

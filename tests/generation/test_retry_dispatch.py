"""A failed attempt is re-queued and re-sent after commit through generation.dispatch, the one
enqueue path for jobs: with the broker down the retry still stands (the sweeper re-sends it)."""

from __future__ import annotations

import pytest

from generation.engine import backends
from generation.engine.backends import clear_engine_cache, register_engine
from generation.models import Generation, GenerationStatus, Video
from generation.tasks import generation_run
from tests.test_redis_outage import point_app_at, redis_down  # noqa: F401 - fixtures

pytestmark = pytest.mark.django_db


class Flaky:
    name, fps, height, width, max_context_frames = "flaky", 8, 16, 16, 0

    def generate(self, requests, on_progress=None):
        raise RuntimeError("device lost")


@pytest.fixture
def flaky_engine(settings):
    register_engine("flaky", lambda **options: Flaky())
    settings.RIFF_ENGINE, settings.RIFF_ENGINE_OPTIONS = "flaky", {}
    settings.RIFF_GENERATION_MAX_ATTEMPTS = 3
    yield
    clear_engine_cache()
    with backends._LOCK:
        backends._FACTORIES.pop("flaky", None)


def _run_and_commit(job, django_capture_on_commit_callbacks) -> str:
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        outcome = generation_run(str(job.pk))
    assert len(callbacks) == 1  # the re-send, held until the retry commits
    return outcome


def test_a_failed_attempt_is_requeued_and_sent_after_commit(
    user, flaky_engine, django_capture_on_commit_callbacks
):
    job = Generation.objects.create(owner=user, prompt="a red ball", seed=5)
    assert _run_and_commit(job, django_capture_on_commit_callbacks) == "retrying"
    job.refresh_from_db()
    assert (job.status, job.attempts, job.error_code) == (GenerationStatus.QUEUED, 1, "")
    assert job.dispatched_at is not None  # a message is out
    assert not Video.objects.filter(generation=job).exists()


@pytest.mark.usefixtures("redis_down")
def test_with_the_broker_down_the_retry_stands_for_the_sweeper(
    user, flaky_engine, django_capture_on_commit_callbacks
):
    job = Generation.objects.create(owner=user, prompt="a red ball", seed=5)
    assert _run_and_commit(job, django_capture_on_commit_callbacks) == "retrying"
    job.refresh_from_db()
    assert (job.status, job.attempts) == (GenerationStatus.QUEUED, 1)
    # No message went out, so none is claimed: generation_sweep re-sends it.
    assert job.dispatched_at is None

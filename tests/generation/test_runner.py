"""The worker's side of the engine: generation.runner reads the Engine protocol and nothing else,
and one EngineUnavailable reaches the task whichever way a backend cannot be built."""

from __future__ import annotations

import uuid

import numpy as np
import pytest

from generation import runner
from generation.engine import backends
from generation.engine.backends import (
    Engine,
    EngineUnavailable,
    GeneratedClip,
    clear_engine_cache,
    register_engine,
)
from generation.models import Generation, Video
from generation.tasks import generation_run

pytestmark = pytest.mark.django_db

provided: list[dict] = []


def recording_provider(*, job, height, width, count):
    """A `remix.context` provider that says what it was asked."""
    provided.append({"job": job.pk, "height": height, "width": width, "count": count})
    return np.full((count, height, width, 3), 7, np.uint8)


class ProtocolOnly:
    """A backend with the protocol's members and nothing more: no `config`, no `model`."""

    name, fps = "protocol-only", 12

    def __init__(self, *, height: int = 24, width: int = 40, context: int = 2):
        self.height, self.width, self.max_context_frames = height, width, context
        self.requests = []

    def generate(self, requests, on_progress=None):
        self.requests += requests
        for done in (1, 2):
            if on_progress is not None:
                on_progress(done, 2)
        return [
            GeneratedClip(np.full((6, self.height, self.width, 3), 90, np.uint8), self.fps, {})
            for _ in requests
        ]


@pytest.fixture
def protocol_backend(settings):
    built: list[ProtocolOnly] = []

    def factory(**options):
        built.append(ProtocolOnly(**options))
        return built[-1]

    register_engine("protocol-only", factory)
    settings.RIFF_ENGINE = "protocol-only"
    settings.RIFF_ENGINE_OPTIONS = {}
    settings.RIFF_HOOKS = {
        **settings.RIFF_HOOKS,
        "remix.context": [f"{__name__}.recording_provider"],
    }
    provided.clear()
    yield built
    clear_engine_cache()
    with backends._LOCK:  # leave the registry as the other tests expect it
        backends._FACTORIES.pop("protocol-only", None)


def test_the_fake_backend_is_an_engine_without_a_config():
    fake = ProtocolOnly()
    assert isinstance(fake, Engine) and not hasattr(fake, "config")


def test_runner_samples_with_a_backend_that_only_implements_the_protocol(user, protocol_backend):
    remix = Generation.objects.create(
        owner=user, prompt="again", seed=3, aspect="16:9", remix_of_id=uuid.uuid4()
    )
    progress = []
    frames, fps = runner.sample_job(remix, lambda done, total: progress.append((done, total)))
    (backend,) = protocol_backend
    # the context frames are asked for at the backend's declared size and count
    assert provided == [{"job": remix.pk, "height": 24, "width": 40, "count": 2}]
    (request,) = backend.requests
    assert request.context_frames.shape == (2, 24, 40, 3)
    assert (request.prompt, request.seed, request.seconds) == ("again", 3, 2.0)
    assert progress == [(1, 2), (2, 2)]
    # the clip comes back at the backend's fps and size; render_job letterboxes it to the
    # job's aspect (the engine frames are kept as they are, beside the MP4)
    assert fps == 12.0 and frames.dtype == np.uint8
    assert frames.shape == (6, 24, 40, 3)
    assert runner.letterbox(frames, remix.aspect).shape == (6, 24, 43, 3)  # padded to 16:9

    plain = Generation.objects.create(owner=user, prompt="plain", seed=4)
    runner.sample_job(plain, lambda done, total: None)
    assert backend.requests[-1].context_frames is None and len(provided) == 1


def test_a_backend_that_takes_no_context_is_not_given_any(user, protocol_backend, settings):
    settings.RIFF_ENGINE_OPTIONS = {"context": 0}
    remix = Generation.objects.create(owner=user, prompt="again", seed=3, remix_of_id=uuid.uuid4())
    runner.sample_job(remix, lambda done, total: None)
    assert provided == [] and protocol_backend[0].requests[0].context_frames is None


def test_the_worker_finishes_a_job_on_a_protocol_only_backend(user, protocol_backend):
    job = Generation.objects.create(owner=user, prompt="a red ball", seed=5)
    assert generation_run(str(job.pk)) == "succeeded"
    job.refresh_from_db()
    assert (job.status, job.error_code) == ("succeeded", "")
    assert Video.objects.filter(generation=job).count() == 1


def test_there_is_one_engine_unavailable():
    from generation import engine, tasks

    assert runner.EngineUnavailable is EngineUnavailable is engine.EngineUnavailable
    assert tasks.EngineUnavailable is EngineUnavailable
    assert EngineUnavailable.__module__ == "generation.engine.backends.base"
    # the runner defines no exception of its own
    assert not [
        v
        for v in vars(runner).values()
        if isinstance(v, type) and issubclass(v, Exception) and v.__module__ == runner.__name__
    ]


def test_unknown_engine_and_missing_weights_raise_the_same_class(settings, tmp_path):
    settings.RIFF_ENGINE, settings.RIFF_ENGINE_OPTIONS = "no-such-engine", {}
    with pytest.raises(EngineUnavailable, match="unknown engine 'no-such-engine'"):
        runner.engine()
    settings.RIFF_ENGINE = "riff-world"
    settings.RIFF_ENGINE_OPTIONS = {"weights": str(tmp_path / "absent.safetensors")}
    with pytest.raises(EngineUnavailable, match="weights not found"):
        runner.engine()


@pytest.mark.parametrize("how", ["unknown name", "factory refuses"])
def test_the_worker_fails_a_job_it_cannot_build_an_engine_for(user, settings, how):
    def refuses(**options):
        raise EngineUnavailable("no GPU on this worker")

    register_engine("refuses", refuses)
    settings.RIFF_ENGINE = "no-such-engine" if how == "unknown name" else "refuses"
    settings.RIFF_ENGINE_OPTIONS = {}
    job = Generation.objects.create(owner=user, prompt="a red ball", seed=5)
    try:
        assert generation_run(str(job.pk)) == "failed"
    finally:
        with backends._LOCK:
            backends._FACTORIES.pop("refuses", None)
    job.refresh_from_db()
    # not retried: another attempt on this worker would meet the same machine
    assert (job.status, job.error_code, job.attempts) == ("failed", "engine_unavailable", 1)
    assert not Video.objects.filter(generation=job).exists()

"""A fleet of generation workers: each engine's jobs go to its own queue, and each worker takes
only the queues it was started on. Two real workers (`manage.py generation_worker` processes)
run two engines: the tiny riff-world on `gpu`, and a second named engine (riff-world registered
again as "world-b", through RIFF_ENGINES) on `gpu.world-b`. Then the worker's Prometheus
metrics: per-clip time by engine, what the worker declares, and GPU readings."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import time
import urllib.request

import pytest
from django.core.management import CommandError, call_command
from prometheus_client import CollectorRegistry, generate_latest

from config.core.routing import engine_queues, generation_route
from generation import metrics
from generation.engine.backends import (
    EngineUnavailable,
    clear_engine_cache,
    get_engine,
    register_engine,
    registered_engines,
)
from generation.models import Generation
from generation.services.admission import AdmissionRequest, generation_admit
from tests.e2e.test_cameo_verification import wait_for
from tests.factories import UserFactory

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

ROUTES = {"world-b": "gpu.world-b", "world-b@1280x720": "gpu.world-b.big"}


@pytest.fixture
def world_b(settings):
    """A second engine, routed to queues of its own."""
    register_engine("world-b", "riff-world", config="tiny", weights=None, steps=2)
    settings.RIFF_GENERATION_QUEUES = ROUTES
    settings.RIFF_VIDEO_MODELS = [settings.RIFF_ENGINE, "world-b"]
    yield "world-b"
    clear_engine_cache()


def test_jobs_route_by_engine_and_size(settings, world_b):
    assert generation_route(model="riff-world") == {"queue": "gpu"}
    assert generation_route(model="") == {"queue": "gpu"}  # blank: the configured engine
    assert generation_route(model="world-b") == {"queue": "gpu.world-b"}
    assert generation_route(model="world-b", size="720x1280") == {"queue": "gpu.world-b"}
    assert generation_route(model="world-b", size="1280x720") == {"queue": "gpu.world-b.big"}
    assert generation_route(model="other") == {"queue": "gpu"}
    assert engine_queues("world-b") == ["gpu.world-b", "gpu.world-b.big"]
    assert engine_queues("riff-world") == ["gpu"]
    settings.RIFF_GENERATION_QUEUES = {"world-b@1280x720": "gpu.big"}
    # only one size is routed away: the engine's other jobs still go to `gpu`
    assert engine_queues("world-b") == ["gpu", "gpu.big"]


@pytest.mark.parametrize(
    "variable,value,message",
    [
        ("RIFF_GENERATION_QUEUES", '{"world-b": "default"}', "must be `gpu` or `gpu.<name>`"),
        ("RIFF_GENERATION_QUEUES", "{not json", "is not valid JSON"),
        ("RIFF_ENGINES", '{"wan": {"path": "/models/wan"}}', 'needs a "backend" name'),
    ],
)
def test_a_bad_fleet_setting_stops_start_up(variable, value, message):
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        env={
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "RIFF_DEV": "1",
            "PATH": "/usr/bin:/bin",
            variable: value,
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and message in result.stderr, result.stderr


WORLD_B = {"backend": "riff-world", "config": "tiny", "weights": None, "steps": 2}


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class _Worker:
    """`manage.py generation_worker` in a process of its own, on the test database and Redis,
    logging to a file (its timing lines say which jobs it ran)."""

    def __init__(self, tmp_path, *args: str, engines=None, routes=None):
        from django.conf import settings
        from django.db import connection

        db = connection.settings_dict
        self.log = tmp_path / f"worker-{args[1]}.log"
        env = {
            "PATH": "/usr/bin:/bin",
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "RIFF_TESTING": "1",  # the tiny engine options, the test Redis database
            "TEST_REDIS_DB": settings.REDIS_URL.rsplit("/", 1)[1],
            "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
            "MEDIA_ROOT": str(settings.MEDIA_ROOT),
            "RIFF_ENGINES": json.dumps(engines or {"world-b": WORLD_B}),
            "RIFF_GENERATION_QUEUES": json.dumps(routes or ROUTES),
            "RIFF_ENGINE_THREADS": "1",
        }
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", "generation_worker", *args],
            env=env,
            stdout=self.log.open("w"),
            stderr=subprocess.STDOUT,
        )

    def ran(self, job: str) -> bool:
        return f"generation {job} stages" in self.log.read_text()

    def stop(self) -> None:
        self.process.terminate()  # a warm shutdown: Celery finishes the job it holds
        self.process.wait(30)


def _admit(user, model: str, size: str = "") -> str:
    return str(
        generation_admit(
            user=user,
            request=AdmissionRequest(
                prompt="a red ball bounces", seconds=1, model=model, size=size
            ),
        ).pk
    )


def _status(pk: str) -> str:
    return Generation.objects.get(pk=pk).status


def _scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
        return answer.read().decode()


def test_each_worker_takes_only_its_engines_queue(world_b, tmp_path):
    """Two workers as an operator starts them: `generation_worker --engine riff-world` and
    `--engine world-b`, each declaring its engine and capacity on its metrics port."""
    user = UserFactory()
    world = _Worker(tmp_path, "--engine", "riff-world", "--gpu-class", "cpu")
    other = None
    try:
        mine = _admit(user, "riff-world")
        theirs = _admit(user, "world-b")
        assert wait_for(lambda: _status(mine) == "succeeded", 120), world.log.read_text()
        # nobody consumes gpu.world-b yet: the riff-world worker leaves that job alone
        time.sleep(2)
        assert _status(theirs) == "queued"
        # ... and the fleet check says so, asking the workers themselves
        out = io.StringIO()
        with pytest.raises(CommandError, match="2 routed queue"):
            call_command("generation_fleet", stdout=out)
        assert (
            "gen-riff-world-cpu@" in out.getvalue() and "queues gpu  capacity 1" in out.getvalue()
        )
        assert "no worker consumes gpu.world-b (world-b): those jobs wait" in out.getvalue()
        assert "no worker consumes gpu.world-b.big (world-b@1280x720)" in out.getvalue()
        port = _free_port()
        other = _Worker(
            tmp_path,
            "--engine", "world-b", "--gpu-class", "l4", "--capacity", "2",
            "--metrics-port", str(port),
        )  # fmt: skip
        assert wait_for(lambda: _status(theirs) == "succeeded", 120), other.log.read_text()
        big = _admit(user, "world-b", size="1280x720")
        # that size is routed to a queue this worker consumes too (its engine's queues)
        assert wait_for(lambda: _status(big) == "succeeded", 120), other.log.read_text()
        text = _scrape(port)
        out = io.StringIO()
        call_command("generation_fleet", stdout=out)  # every routed queue has a worker now
        assert "queues gpu.world-b,gpu.world-b.big  capacity 2  running 0" in out.getvalue()
    finally:
        for worker in (world, other):
            if worker is not None:
                worker.stop()
    assert world.ran(mine) and not world.ran(theirs) and not world.ran(big)
    assert other.ran(theirs) and other.ran(big) and not other.ran(mine)
    assert Generation.objects.get(pk=theirs).model == "world-b"
    assert "queues gpu.world-b,gpu.world-b.big, capacity 2" in other.log.read_text()
    # the worker's own metrics: what it runs, and one clip time per job it ran
    info = [line for line in text.splitlines() if line.startswith("riff_worker_info{")]
    assert len(info) == 1 and 'engine="world-b"' in info[0] and 'gpu_class="l4"' in info[0]
    assert 'queues="gpu.world-b,gpu.world-b.big"' in info[0] and info[0].endswith(" 1.0")
    assert _sample(text, "riff_worker_capacity", engine="world-b", gpu_class="l4") == 2
    assert (
        _sample(text, "riff_generation_clip_seconds_count", engine="world-b", outcome="succeeded")
        == 2
    )
    assert _sample(text, "riff_generation_sampling_seconds_count", engine="world-b") == 2
    assert _sample(text, "riff_worker_jobs_in_flight", engine="world-b") == 0
    # a CPU worker has no GPU series at all (not zeros that would read as an idle GPU)
    assert "riff_gpu_memory_used_bytes{" not in text


class _FakeGpus:
    """Readings of a GPU this machine doesn't have (the one thing mocked: outside the box)."""

    def __call__(self):
        return [metrics.GpuReading(0, "NVIDIA H100", 30 * 2**30, 80 * 2**30, 28 * 2**30, 0.75)]


def _sample(text: str, metric: str, **labels) -> float | None:
    want = ",".join(f'{key}="{value}"' for key, value in labels.items())
    for line in text.splitlines():
        if line.startswith(f"{metric}{{{want}}} "):
            return float(line.rsplit(" ", 1)[1])
    return None


def test_an_open_model_is_a_configuration_change(settings, tmp_path):
    """A diffusers model (a tiny Wan 2.1 of random weights, the real classes, saved as an
    operator would provide it) named in RIFF_ENGINES, routed to its own queue and run by
    `generation_worker --engine wan-tiny` in a process of its own: no code of the deployment
    changes. The MP4 comes back at the delivered size and length."""
    import av
    from django.core.files.storage import default_storage

    from config.devtools import diffusers_models as tiny

    tiny.wan().save_pretrained(tmp_path / "wan")
    spec = {
        "backend": "diffusers",
        "path": str(tmp_path / "wan"),
        "height": tiny.HEIGHT,
        "width": tiny.WIDTH,
        "steps": 2,
    }
    routes = {"wan-tiny": "gpu.wan"}
    register_engine("wan-tiny", "diffusers", **{k: v for k, v in spec.items() if k != "backend"})
    settings.RIFF_GENERATION_QUEUES = routes
    user = UserFactory()
    worker = _Worker(tmp_path, "--engine", "wan-tiny", engines={"wan-tiny": spec}, routes=routes)
    try:
        job = generation_admit(
            user=user,
            request=AdmissionRequest(
                prompt="a red ball", seconds=1, model="wan-tiny", aspect="16:9"
            ),
        )
        assert wait_for(lambda: _status(job.pk) == "succeeded", 180), worker.log.read_text()
    finally:
        worker.stop()
        clear_engine_cache()
    assert worker.ran(str(job.pk))
    assert "engine wan-tiny, queues gpu.wan, capacity 1" in worker.log.read_text()
    video = Generation.objects.get(pk=job.pk).video
    with (
        default_storage.open(video.content, "rb") as fh,
        av.open(io.BytesIO(fh.read())) as container,
    ):
        stream = container.streams.video[0]
        frames = list(container.decode(stream))
        # Read while the container is open: PyAV 18.1.1 refuses a closed container's streams.
        size, rate = (stream.width, stream.height), float(stream.average_rate)
    assert size == (910, 512)  # 16:9 at a 512 px short side
    assert len(frames) == 16 and rate == 16  # 1 s of Wan's 16 fps


def test_a_worker_with_capacity_batches_jobs_that_arrive_together(world_b, tmp_path):
    """`--capacity 2` runs two jobs at once (threads); with `batch_window_ms` the engine runs
    them as one batch, and each job still gets its own video."""
    spec = {**WORLD_B, "batch_window_ms": 1500, "batch_size": 2}
    user = UserFactory()
    worker = _Worker(tmp_path, "--engine", "world-b", "--capacity", "2", engines={"world-b": spec})
    try:
        jobs = [_admit(user, "world-b") for _ in range(2)]
        assert wait_for(lambda: all(_status(job) == "succeeded" for job in jobs), 120), (
            worker.log.read_text()
        )
    finally:
        worker.stop()
    log = worker.log.read_text()
    assert ": a batch of 2" in log and "a batch of 1" not in log, log
    videos = [Generation.objects.get(pk=job).video for job in jobs]
    assert videos[0].pk != videos[1].pk and videos[0].sha256 != videos[1].sha256


def test_gpu_readings_become_metrics():
    registry = CollectorRegistry()
    registry.register(metrics.GpuCollector(_FakeGpus()))
    gpu = generate_latest(registry).decode()
    labels = {"gpu": "0", "name": "NVIDIA H100"}
    assert _sample(gpu, "riff_gpu_memory_used_bytes", **labels) == 30 * 2**30
    assert _sample(gpu, "riff_gpu_memory_total_bytes", **labels) == 80 * 2**30
    assert _sample(gpu, "riff_gpu_memory_peak_bytes", **labels) == 28 * 2**30
    assert _sample(gpu, "riff_gpu_utilization_ratio", **labels) == 0.75
    # NVML that can't say: no utilisation series rather than a made-up figure
    registry = CollectorRegistry()
    registry.register(metrics.GpuCollector(lambda: [metrics.GpuReading(0, "T4", 1, 2, 1, None)]))
    assert "riff_gpu_utilization_ratio{" not in generate_latest(registry).decode()


def test_a_named_engine_is_its_backend_with_its_options():
    calls = []

    def factory(**options):
        calls.append(options)
        return object()

    register_engine("fleet-base", factory, steps=30, device="cuda")
    register_engine("fleet-named", "fleet-base", path="/models/x", steps=8)
    try:
        get_engine("fleet-named")
        get_engine("fleet-named", device="cpu")  # a call's own options win
        assert calls == [
            {"steps": 8, "device": "cuda", "path": "/models/x"},
            {"steps": 8, "device": "cpu", "path": "/models/x"},
        ]
        with pytest.raises(EngineUnavailable, match="no backend 'nothing'"):
            register_engine("fleet-bad", "nothing")
        assert "fleet-bad" not in registered_engines()
    finally:
        clear_engine_cache()


@pytest.mark.parametrize(
    "args,message",
    [
        (["--engine", "no-such"], "unknown engine 'no-such'"),
        (["--queues", "default,gpu"], "not generation queues (gpu, gpu.<name>): default"),
        (["--capacity", "0"], "--capacity must be at least 1"),
    ],
)
def test_the_worker_command_refuses_what_it_cannot_run(args, message):
    with pytest.raises(CommandError) as refused:
        call_command("generation_worker", *args)
    assert message in str(refused.value)

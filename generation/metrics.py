"""A generation worker's Prometheus metrics: what it runs, how long each clip takes, its GPUs.

    riff_worker_info{engine, gpu_class, queues, hostname}      1 per running worker
    riff_worker_capacity{engine, gpu_class}                     jobs it runs at once
    riff_worker_jobs_in_flight{engine}                          jobs running now
    riff_generation_clip_seconds{engine, outcome}               claim to outcome, per job
    riff_generation_sampling_seconds{engine}                    the engine's own time, per job
    riff_gpu_memory_used_bytes{gpu, name}                       per visible GPU (CUDA only)
    riff_gpu_memory_total_bytes{gpu, name}
    riff_gpu_memory_peak_bytes{gpu, name}                       torch's peak allocation
    riff_gpu_utilization_ratio{gpu, name}                       0-1, when NVML answers

Per-clip seconds are what the capacity model in docs/operations.md ("Fleet") is built from:
`rate(riff_generation_clip_seconds_sum[1h]) / rate(riff_generation_clip_seconds_count[1h])` is
the mean clip time of an engine on a GPU class. The worker serves them on its own port
(`manage.py generation_worker --metrics-port`, or RIFF_WORKER_METRICS_PORT), not through the
web tier's /metrics. GPU figures come from torch when the process has loaded it and CUDA is
there; a CPU worker simply has no `riff_gpu_*` series. Never imports torch itself.
"""

from __future__ import annotations

import logging
import math
import sys
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from prometheus_client import REGISTRY, CollectorRegistry, Gauge, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from . import timing

logger = logging.getLogger("generation.worker")

# Clips take seconds on a GPU to minutes on a CPU: buckets span both.
CLIP_BUCKETS = (0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1200, 3600)

WORKER_INFO = Gauge(
    "riff_worker_info",
    "A generation worker: its engine, GPU class and queues (always 1)",
    ["engine", "gpu_class", "queues", "hostname"],
)
WORKER_CAPACITY = Gauge(
    "riff_worker_capacity", "Generation jobs the worker runs at once", ["engine", "gpu_class"]
)
JOBS_IN_FLIGHT = Gauge(
    "riff_worker_jobs_in_flight", "Generation jobs running in this worker now", ["engine"]
)
CLIP_SECONDS = Histogram(
    "riff_generation_clip_seconds",
    "Wall time of one generation job on the worker, claim to committed outcome",
    ["engine", "outcome"],
    buckets=CLIP_BUCKETS,
)
SAMPLING_SECONDS = Histogram(
    "riff_generation_sampling_seconds",
    "The engine's own sampling time of one job (progress reports excluded)",
    ["engine"],
    buckets=CLIP_BUCKETS,
)


@dataclass(frozen=True)
class GpuReading:
    index: int
    name: str
    used_bytes: int
    total_bytes: int
    peak_bytes: int
    utilization: float | None  # 0-1; None when NVML can't say


def torch_gpus() -> list[GpuReading]:
    """Readings of every visible CUDA device, from the torch this process already loaded (an
    engine did); [] on a CPU worker or before any engine loaded torch."""
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_available():
        return []
    readings = []
    for index in range(torch.cuda.device_count()):
        free, total = torch.cuda.mem_get_info(index)
        try:
            utilization = torch.cuda.utilization(index) / 100.0  # needs pynvml / NVML
        except Exception:
            utilization = None
        readings.append(
            GpuReading(
                index=index,
                name=torch.cuda.get_device_name(index),
                used_bytes=int(total - free),
                total_bytes=int(total),
                peak_bytes=int(torch.cuda.max_memory_allocated(index)),
                utilization=utilization,
            )
        )
    return readings


class GpuCollector(Collector):
    """Reads the GPUs at scrape time (no polling thread): `probe` returns the readings."""

    def __init__(self, probe: Callable[[], Iterable[GpuReading]] = torch_gpus):
        self.probe = probe

    def collect(self):
        labels = ["gpu", "name"]
        used = GaugeMetricFamily("riff_gpu_memory_used_bytes", "GPU memory in use", labels=labels)
        total = GaugeMetricFamily("riff_gpu_memory_total_bytes", "GPU memory", labels=labels)
        peak = GaugeMetricFamily(
            "riff_gpu_memory_peak_bytes", "Peak memory torch allocated", labels=labels
        )
        util = GaugeMetricFamily(
            "riff_gpu_utilization_ratio", "GPU busy share (NVML), 0-1", labels=labels
        )
        try:
            readings = list(self.probe())
        except Exception:
            logger.exception("reading the GPUs failed")
            readings = []
        for reading in readings:
            key = [str(reading.index), reading.name]
            used.add_metric(key, reading.used_bytes)
            total.add_metric(key, reading.total_bytes)
            peak.add_metric(key, reading.peak_bytes)
            if reading.utilization is not None:
                util.add_metric(key, reading.utilization)
        yield from (used, total, peak, util)


def record_job(job_id: str, summary: dict) -> None:
    """timing listener: one finished job's clip time and sampling time."""
    engine = summary.get("engine") or "unknown"
    stages = summary.get("stages", {})
    CLIP_SECONDS.labels(engine, summary.get("outcome", "error")).observe(
        max(0.0, summary["finished"] - summary["started"])
    )
    if "sampling" in stages:
        SAMPLING_SECONDS.labels(engine).observe(
            max(0.0, stages["sampling"] - stages.get("progress", 0.0))
        )


_installed = threading.Lock()
_state: dict[str, object] = {}


def install(*, registry: CollectorRegistry = REGISTRY) -> None:
    """Records every job this process runs (once per process, however often it is called) and
    adds the GPU readings to `registry`."""
    with _installed:
        if "listener" in _state:
            return
        _state["listener"] = timing.listen(record_job)
        collector = GpuCollector()
        registry.register(collector)
        _state["collector"] = collector


def declare(*, engine: str, gpu_class: str, queues: Iterable[str], capacity: int, hostname: str):
    """What this worker runs, as series a dashboard (and the capacity model) groups by."""
    WORKER_INFO.labels(engine, gpu_class, ",".join(sorted(queues)), hostname).set(1)
    WORKER_CAPACITY.labels(engine, gpu_class).set(capacity)


def serve(port: int, *, address: str = "127.0.0.1") -> None:
    """Serves this process's metrics on `port` (a thread of prometheus_client), on loopback
    unless told otherwise: a fleet's Prometheus on another machine needs the worker's private
    address (RIFF_WORKER_METRICS_ADDRESS); nothing in them is secret, but nothing invites the
    world to scrape them either."""
    install()
    start_http_server(port, addr=address)
    logger.info("generation worker metrics on %s:%d", address, port)


# ------------------------------------------------------------------------- capacity model


@dataclass(frozen=True)
class CapacityPlan:
    workers: int  # worker slots (GPUs, at one job each) to provision
    busy: float  # mean worker-slots busy over the day
    peak: float  # worker-slots busy in the peak hour
    utilisation: float  # the mean share of the provisioned slots that works


def capacity_plan(
    *,
    per_day: float,
    clip_seconds: float,
    peak_factor: float = 2.0,
    target_utilisation: float = 0.8,
    jobs_per_worker: int = 1,
) -> CapacityPlan:
    """Worker slots (GPUs, with one job each) needed for `per_day` generations of
    `clip_seconds` each (a measured mean: `mean_clip_seconds`).

    Busy slots on average are per_day x clip_seconds / 86,400 (Little's law: arrivals per
    second x time in service). The peak hour brings `peak_factor` times the mean rate, and a
    slot kept busier than `target_utilisation` at the peak queues jobs without bound (waiting
    grows as 1 / (1 - utilisation)), so the plan provisions peak / target slots, rounded up.
    `jobs_per_worker` > 1 is a worker whose clip time was measured while it ran that many at
    once (a batch or several threads): each of its slots counts."""
    if per_day < 0 or clip_seconds <= 0 or peak_factor < 1 or not 0 < target_utilisation <= 1:
        raise ValueError(
            "per_day >= 0, clip_seconds > 0, peak_factor >= 1, 0 < target_utilisation <= 1"
        )
    busy = per_day * clip_seconds / 86_400
    peak = busy * peak_factor
    slots = math.ceil(peak / target_utilisation - 1e-9) if per_day else 0
    workers = math.ceil(slots / max(1, jobs_per_worker))
    return CapacityPlan(
        workers=workers,
        busy=busy,
        peak=peak,
        utilisation=busy / (workers * max(1, jobs_per_worker)) if workers else 0.0,
    )


def mean_clip_seconds(scrape: str, engine: str) -> tuple[float, int]:
    """(mean seconds, count) of the succeeded clips of `engine` in a worker's /metrics text:
    the figure `capacity_plan` takes. Raises ValueError when it has none."""
    total = count = 0.0
    for family in text_string_to_metric_families(scrape):
        if family.name != "riff_generation_clip_seconds":
            continue
        for sample in family.samples:
            labels = sample.labels
            if labels.get("engine") != engine or labels.get("outcome") != "succeeded":
                continue
            if sample.name.endswith("_sum"):
                total += sample.value
            elif sample.name.endswith("_count"):
                count += sample.value
    if not count:
        raise ValueError(f"no succeeded clips of {engine!r} in these metrics")
    return total / count, int(count)

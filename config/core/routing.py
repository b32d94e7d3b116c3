"""Where generation jobs go: the `gpu` queue, or one queue per engine (and per GPU class).

Bottom layer (config.core), so that the dispatcher (generation.dispatch), the worker command
and the Celery app (config.celery) share one answer. settings.RIFF_GENERATION_QUEUES maps an
engine name, or "<engine>@<WxH>" for one delivered size of it, to a queue named `gpu` or
`gpu.<anything>`; an engine it doesn't name goes to `gpu` (docs/operations.md, "Fleet").
"""

from __future__ import annotations

from django.conf import settings

GENERATION_QUEUE = "gpu"


def is_generation_queue(name: str) -> bool:
    """Generation queues are `gpu` and `gpu.<anything>`: a worker consuming one of them runs
    jobs, so it loads its engine before the first."""
    return name == GENERATION_QUEUE or name.startswith(GENERATION_QUEUE + ".")


def generation_route(*, model: str, size: str = "") -> dict[str, str]:
    """The publish options that send a job to its engine's workers: the queue routed for
    "<model>@<size>" (a size that needs a bigger GPU class), else for "<model>", else `gpu`.
    `model` blank is the configured RIFF_ENGINE."""
    routes = settings.RIFF_GENERATION_QUEUES
    name = model or settings.RIFF_ENGINE
    queue = (size and routes.get(f"{name}@{size}")) or routes.get(name)
    return {"queue": queue or GENERATION_QUEUE}


def engine_queues(engine: str) -> list[str]:
    """Every queue `engine`'s jobs can be routed to (all its sizes): what a worker running it
    consumes. `gpu` is among them unless the engine itself is routed elsewhere."""
    routes = settings.RIFF_GENERATION_QUEUES
    queues = {queue for key, queue in routes.items() if key.partition("@")[0] == engine}
    if engine not in routes:
        queues.add(GENERATION_QUEUE)
    return sorted(queues)

"""The Celery app: queues `gpu` (generation), `media` (encode, verify), `default` (the rest).

Generation jobs go to `gpu` unless settings.RIFF_GENERATION_QUEUES sends an engine's jobs (or
one size of them) to a queue of its own, `gpu.<name>`: a fleet of workers, each running one
engine on one GPU class (config.core.routing; docs/operations.md, "Fleet").

Reliability: a task is acknowledged only after it finishes (`acks_late`), re-queued when its
worker dies (`reject_on_worker_lost`), each worker holds one message at a time, and Redis'
visibility timeout outlasts the longest task so a slow job is not delivered twice.

A worker that consumes `gpu` prepares the process that will run jobs before taking the first
one (`_prepare_engine_process`, docs/generation.md "Worker"): torch's thread count
(`RIFF_ENGINE_THREADS`), the process priority (`RIFF_WORKER_NICE`), and the engine loaded and
run once (`RIFF_WORKER_WARM`), so no job pays for loading weights or MiniLM. With the prefork
pool that happens in each child (torch is never initialised in the parent: OpenMP does not
survive a fork); with an in-process pool (solo, threads) in the worker process itself.
"""

import importlib.util
import logging
import os
import sys
import time

from celery import Celery, signals
from kombu import Queue

from .core.routing import GENERATION_QUEUE, is_generation_queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

# Every task's queue, by task name, and nowhere else: no `queue=` on a task decorator or a
# send. A task missing here would silently run on `default`, so tests/test_tasks.py checks that
# every registered task has exactly one entry and every entry names a registered task.
TASK_QUEUES = {
    "accounts.tasks.idempotency_purge": "default",
    "cameos.tasks.cameo_verify": "media",
    "cameos.tasks.cameo_verify_sweep": "default",
    # or the queue settings.RIFF_GENERATION_QUEUES routes the job's engine to (core.routing)
    "generation.tasks.generation_run": GENERATION_QUEUE,
    "generation.tasks.generation_sweep": "default",
    "feed.tasks.post_embed": "default",
    "feed.tasks.preference_embed": "default",
    "feed.tasks.post_fanout": "default",
    "feed.tasks.feed_order_refresh": "default",
    "feed.tasks.feed_partitions_ensure": "default",
    "feed.tasks.feed_trending_refresh": "default",
    "feed.tasks.feed_cold_start_refresh": "default",
    "feed.tasks.feed_embeddings_sweep": "default",
    "rights.tasks.ip_semantic_check": "default",
    "moderation.tasks.moderation_expire": "default",
    "generation.webhooks.tasks.webhook_deliver": "default",
    "generation.webhooks.tasks.webhook_sweep": "default",
}

app = Celery("riff")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.update(
    task_queues=[Queue("default"), Queue("media"), Queue("gpu")],
    task_default_queue="default",
    task_routes={name: {"queue": queue} for name, queue in TASK_QUEUES.items()},
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    task_track_started=True,
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    result_expires=24 * 3600,
    broker_connection_retry_on_startup=True,
    worker_send_task_events=True,
    # task_send_sent_event: settings.CELERY_TASK_SEND_SENT_EVENT (off unless asked for).
)


app.autodiscover_tasks()


# Beat: webhook deliveries whose message was lost (the broker was down, a worker died
# mid-attempt) are sent again (generation.webhooks.delivery). Celery adds this entry to
# settings.CELERY_BEAT_SCHEDULE when it reads its configuration.
app.add_periodic_task(
    30.0, app.signature("generation.webhooks.tasks.webhook_sweep"), name="webhook-sweep"
)


logger = logging.getLogger("generation.worker")


def _setting(name: str, default):
    from django.conf import settings

    value = getattr(settings, name, None)
    if value is None:
        value = os.environ.get(name)
    if value is None or isinstance(value, type(default)):
        return default if value is None else value
    if isinstance(default, bool):
        return str(value).strip().lower() in ("1", "true", "yes", "on")
    return type(default)(value)


def _consumes_gpu(app_) -> bool:
    return any(is_generation_queue(name) for name in (app_.amqp.queues.consume_from or {}))


def _prepare_engine_process(*, tune_process: bool) -> None:
    """Sets this process up to run generation jobs. `tune_process`: a process of its own (a
    `celery worker` or one of its pool children), not a worker embedded in another program
    (tests, `manage.py bench_generation`'s dispatch run), whose threads and priority are not
    ours to change."""
    started = time.perf_counter()
    from generation.metrics import install

    install()  # per-clip times and GPU readings (generation.metrics)
    if tune_process:
        nice = int(_setting("RIFF_WORKER_NICE", 0))
        if nice:
            os.nice(nice)
        threads = int(_setting("RIFF_ENGINE_THREADS", 1))
        # 0: torch's own default (one thread per core). A worker without torch (one running
        # the remote backend from the web image) has no threads to set.
        if threads > 0 and importlib.util.find_spec("torch") is not None:
            import torch

            torch.set_num_threads(threads)
    if bool(_setting("RIFF_WORKER_WARM", True)):
        from generation.runner import warm

        try:
            warm()
        except Exception:
            # A worker that can't build its engine still starts: each job then fails with
            # `engine_unavailable` (generation.tasks), which says why, instead of a crash loop.
            logger.exception("generation worker: warming the engine failed")
            return
    torch = sys.modules.get("torch")  # whatever the engine loaded; never imported here
    logger.info(
        "generation worker ready in %.2f s (torch threads %s, nice %d)",
        time.perf_counter() - started,
        torch.get_num_threads() if torch else "-",
        os.nice(0),
    )


@signals.worker_init.connect
def _on_worker_init(sender=None, **_):
    # Jobs run in this very process with an in-process pool; prefork children warm below.
    pool = str(getattr(sender, "pool_cls", "") or "")
    if "prefork" in pool or not _consumes_gpu(sender.app):
        return
    from celery.apps.worker import Worker

    _prepare_engine_process(tune_process=isinstance(sender, Worker))


@signals.worker_process_init.connect
def _on_pool_child_init(**_):
    if _consumes_gpu(app):
        _prepare_engine_process(tune_process=True)

"""The Celery app: queues `gpu` (generation), `media` (encode, verify), `default` (the rest).

Reliability: a task is acknowledged only after it finishes (`acks_late`), re-queued when its
worker dies (`reject_on_worker_lost`), each worker holds one message at a time, and Redis'
visibility timeout outlasts the longest task so a slow job is not delivered twice.
"""

import os

from celery import Celery
from kombu import Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

# Every task's queue, by task name, and nowhere else: no `queue=` on a task decorator or a
# send. A task missing here would silently run on `default`, so tests/test_tasks.py checks that
# every registered task has exactly one entry and every entry names a registered task.
TASK_QUEUES = {
    "accounts.tasks.idempotency_purge": "default",
    "cameos.tasks.cameo_verify": "media",
    "cameos.tasks.cameo_verify_sweep": "default",
    "generation.tasks.generation_run": "gpu",
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
    task_send_sent_event=True,
)


app.autodiscover_tasks()

"""A real Celery worker thread consuming the real Redis broker, for whole-system tests."""

import pytest
import pytest_asyncio
from asgiref.sync import sync_to_async
from celery.contrib.testing.worker import start_worker
from celery.signals import task_postrun
from django.db import connections

from config.celery import app as celery_app


@pytest.fixture
def celery_worker(transactional_db):
    # The worker thread uses its own database connection, so the test must commit its writes
    # (transactional_db) for the worker to see them.
    def close_thread_connections(**_):
        # Runs in the worker thread: don't leave its connection open past the test database.
        connections.close_all()

    task_postrun.connect(close_thread_connections, weak=False)
    with start_worker(
        celery_app,
        pool="solo",
        concurrency=1,
        perform_ping_check=False,
        queues=["gpu", "media", "default"],
        shutdown_timeout=20,
    ) as worker:
        yield worker
    task_postrun.disconnect(close_thread_connections)


@pytest_asyncio.fixture
async def close_sync_thread_connections():
    """An async test's `sync_to_async` calls run in asgiref's one shared thread, which keeps its
    database connection open past the test; close it, or the test database can't be dropped."""
    yield
    await sync_to_async(connections.close_all)()

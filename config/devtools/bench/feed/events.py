"""What the server under test asked of Celery, counted from the publishers' side: every process
of the app sends a `task-sent` event per message it publishes (`CELERY_TASK_SEND_SENT_EVENT`,
which the bench's server sets: SERVER_ENV), whoever consumes the message and whenever."""

from __future__ import annotations

import threading
import time
import uuid

from django.core.management.base import CommandError

PROBE = "bench-probe"


class SentTasks:
    """Counts, on a thread of this process, the `task-sent` events of `task` whose arguments name
    one of `ids`: what the bench's requests caused, and nothing that another process sharing
    the broker published. `start` returns once the subscription demonstrably receives."""

    def __init__(self, *, task: str, ids: set[str]):
        from celery.events.receiver import EventReceiver

        from config.celery import app

        self.app = app
        self.task = task
        self.ids = ids
        self.sent = 0
        self.lock = threading.Lock()
        self.probe_id = uuid.uuid4().hex
        self.probed = threading.Event()
        self.conn = app.connection_for_read()
        self.receiver = EventReceiver(
            self.conn,
            handlers={"task-sent": self._on_sent, PROBE: self._on_probe},
            app=app,
        )
        self.thread = threading.Thread(target=self._capture, name="bench_feed-events", daemon=True)

    def _capture(self) -> None:
        # wakeup=False: no broadcast asking every worker on the broker to report in.
        self.receiver.capture(limit=None, timeout=None, wakeup=False)

    def _on_sent(self, event: dict) -> None:
        if event.get("name") != self.task:
            return
        text = str(event.get("args", ""))
        if any(i in text for i in self.ids):
            with self.lock:
                self.sent += 1

    def _on_probe(self, event: dict) -> None:
        if event.get("probe_id") == self.probe_id:
            self.probed.set()

    def start(self, timeout: float = 15.0) -> None:
        self.thread.start()
        deadline = time.monotonic() + timeout
        with self.app.connection_for_write() as conn:
            dispatcher = self.app.events.Dispatcher(conn, enabled=True)
            # Until one arrives: the subscription starts on the thread's first poll.
            while not self.probed.wait(0.2):
                if time.monotonic() > deadline or not self.thread.is_alive():
                    raise CommandError("the Celery event subscription did not start in time")
                dispatcher.send(PROBE, probe_id=self.probe_id)
            dispatcher.close()

    def count(self) -> int:
        with self.lock:
            return self.sent

    def close(self) -> None:
        self.receiver.should_stop = True
        if self.thread.is_alive():
            self.thread.join(timeout=10)
        self.conn.release()

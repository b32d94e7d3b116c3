"""The system under test: uvicorn (`config.asgi:application`, N workers, `DEBUG=0`) and, next to
it for the whole run, one Celery worker on the `default` queue, both on this process's database
and Redis with the same environment.

The worker is there because production serves For You with one: a viewer's ranked order is
reused across sessions and, once `RIFF_FEED_ORDER_REFRESH_SECONDS` old, re-ranked ahead of the
next request by `feed.tasks.feed_order_refresh` on `default` (feed.ranking.order_refresh_soon).
Without a worker those messages would pile up in the broker and no order would ever be
re-ranked; with one, its CPU is spent on the same machine while the scenarios run, as on a box
that serves both. It consumes `default` only: nothing consumes the generation queue (`gpu`), so
no engine is loaded and the admission scenario's messages wait there for the clean-up's purge.
"""

from __future__ import annotations

import http.client
import os
import socket
import subprocess
import sys
import time
from urllib.parse import quote

from django.conf import settings
from django.core.management.base import CommandError
from django.db import connection

ORDER_REFRESH = "feed.tasks.feed_order_refresh"
# config.celery.TASK_QUEUES routes ORDER_REFRESH here.
WORKER_QUEUE = "default"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _database_url() -> str:
    """The database this process is using (the test database under pytest)."""
    db = connection.settings_dict
    auth = quote(db.get("USER") or "", safe="")
    if db.get("PASSWORD"):
        auth += ":" + quote(db["PASSWORD"], safe="")
    host = db.get("HOST") or "127.0.0.1"
    if host.startswith("/"):  # a socket directory (the embedded server): percent-encoded
        host = quote(host, safe="")
    port = db.get("PORT") or 5432
    return f"postgres://{auth}@{host}:{port}/{db['NAME']}"


def server_env(*, timeout: float, extra_env: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of every process of the system under test."""
    return {
        # A request the client gave up on must not keep the database busy afterwards.
        "PGOPTIONS": f"-c statement_timeout={int(timeout * 1000)}",
        **os.environ,
        "DATABASE_URL": _database_url(),
        "REDIS_URL": settings.REDIS_URL,
        # Named, so the clean-up purges the broker this server published to.
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "SECRET_KEY": settings.SECRET_KEY,
        # A production-like process: no DEBUG query log, not the test configuration.
        "DEBUG": "0",
        "RIFF_TESTING": "0",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "DJANGO_SETTINGS_MODULE": "config.settings",
        **(extra_env or {}),
    }


class Server:
    """uvicorn and the Celery worker: started together, checked together, stopped together."""

    def __init__(
        self, *, port: int, workers: int, timeout: float, extra_env: dict[str, str] | None = None
    ):
        self.port = port
        env = server_env(timeout=timeout, extra_env=extra_env)
        # First: it takes the longer to start, and uvicorn's start-up overlaps it.
        self.worker = Worker(env=env, name=f"bench_feed-{port}@{socket.gethostname()}")
        try:
            self.proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module
                [
                    sys.executable,
                    "-m",
                    "uvicorn",
                    "config.asgi:application",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    "--workers",
                    str(workers),
                    "--no-access-log",
                    "--log-level",
                    "warning",
                ],
                cwd=str(settings.BASE_DIR),
                env=env,
            )
        except BaseException:
            self.worker.stop()
            raise

    def wait(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.worker.check("start-up")
            if self.proc.poll() is not None:
                raise CommandError(f"uvicorn exited with {self.proc.returncode}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                conn.request("GET", "/healthz")
                if conn.getresponse().status == 200:
                    break
            except OSError:
                pass
            time.sleep(0.2)
        else:
            raise CommandError("uvicorn did not become healthy in time")
        self.worker.wait(deadline)

    def check(self, during: str) -> None:
        """Raises when the server or its worker is gone: every later figure would be connection
        errors, or would leave out the worker's share of the machine."""
        if self.proc.poll() is not None:
            raise CommandError(f"uvicorn exited with {self.proc.returncode} during {during}")
        self.worker.check(during)

    def stop(self) -> None:
        try:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        finally:
            self.worker.stop()


class Worker:
    """`celery -A config worker -Q default -c 1`: one worker process and its one pool child,
    no engine (it does not consume `gpu`). `name` is its node name, which `ping` addresses."""

    def __init__(self, *, env: dict[str, str], name: str):
        self.name = name
        self.proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [
                sys.executable,
                # --quiet: no banner in the bench's output.
                *("-m", "celery", "-A", "config", "--quiet", "worker"),
                *("-Q", WORKER_QUEUE, "-c", "1", "-n", name),
                *("--without-heartbeat", "--without-mingle", "--without-gossip"),
                *("-l", "warning"),
            ],
            cwd=str(settings.BASE_DIR),
            env=env,
        )

    def wait(self, deadline: float) -> None:
        """Returns once the worker answers a ping (it is consuming), so that its start-up is
        not measured."""
        from config.celery import app

        while time.monotonic() < deadline:
            self.check("start-up")
            if app.control.ping(destination=[self.name], timeout=1.0, limit=1):
                return
        raise CommandError("the Celery worker did not answer a ping in time")

    def check(self, during: str) -> None:
        if self.proc.poll() is not None:
            raise CommandError(
                f"the Celery worker exited with {self.proc.returncode} during {during}"
            )

    def cpu_seconds(self) -> float:
        """CPU seconds of the worker's processes so far."""
        import psutil

        try:
            proc = psutil.Process(self.proc.pid)
            times = proc.cpu_times()
            children = proc.children(recursive=True)
        except psutil.NoSuchProcess:
            return 0.0
        # Pool children it has reaped are in children_*; the live ones are added one by one.
        total = times.user + times.system + times.children_user + times.children_system
        for child in children:
            try:
                times = child.cpu_times()
            except psutil.NoSuchProcess:
                continue
            total += times.user + times.system
        return total

    def stop(self) -> None:
        """Warm shutdown (SIGTERM: the task in hand finishes, a prefetched message goes back to
        the queue), then SIGKILL for whatever of the worker is left."""
        import psutil

        try:
            family = psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            family = []
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        _, alive = psutil.wait_procs(family, timeout=5)
        for child in alive:
            child.kill()
        psutil.wait_procs(alive, timeout=5)

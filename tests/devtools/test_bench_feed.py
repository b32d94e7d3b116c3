"""`bench_feed` (config/devtools/bench/feed/): the pieces on their own, the wrk script against
a tiny HTTP server, and one short real run (uvicorn and its Celery worker) against a seeded test
database."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command

from config.devtools.bench import feed as bench
from config.devtools.bench.feed import events, report, server
from config.devtools.bench.feed import wrk as bench_wrk
from config.devtools.bench.feed.cpu import GROUPS, CpuLedger
from config.devtools.seeding import SeedSpec, seed, seed_delete

needs_wrk = pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed")


# --- the request list and the wrk script -------------------------------------------------------


def test_request_list_has_one_tab_separated_line_per_request(tmp_path):
    path = tmp_path / "list.txt"
    n = bench.write_request_list(
        path,
        [
            ("GET", "/healthz", None),
            ("GET", "/api/v1/me", "tok1"),
            ("POST", "/api/v1/generations", "tok2", {"prompt": "a\tb", "cameos": ["c1", "c2"]}),
        ],
    )
    assert n == 3
    assert path.read_text().splitlines() == [
        "GET\t/healthz\t",
        "GET\t/api/v1/me\ttok1",
        # json.dumps escapes the tab: a body never breaks the line format.
        'POST\t/api/v1/generations\ttok2\t{"prompt":"a\\tb","cameos":["c1","c2"]}',
    ]


def test_request_list_refuses_what_the_script_could_not_read(tmp_path):
    with pytest.raises(ValueError):
        bench.write_request_list(tmp_path / "a.txt", [("GET", "/x\ty", "t")])
    with pytest.raises(ValueError):
        bench.write_request_list(tmp_path / "b.txt", [])


class _Recorder(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as a real server
    seen: Counter = Counter()
    lock = threading.Lock()

    def _answer(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        key = (self.command, self.path, self.headers.get("Authorization"), body.decode())
        with self.lock:
            self.seen[key] += 1
        status = 404 if self.path == "/missing" else 200
        self.send_response(status)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    do_GET = do_POST = _answer

    def log_message(self, *args):
        pass


@needs_wrk
def test_wrk_script_walks_the_list_evenly_and_counts_statuses(tmp_path):
    _Recorder.seen = Counter()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        runner = bench.Runner(
            port=server.server_address[1],
            connections=4,
            duration=1,
            warmup=0,
            timeout=5,
            workdir=tmp_path,
            log=lambda line: None,
        )
        entries = [("GET", f"/v/{i}", f"tok{i}") for i in range(9)]
        entries.append(("GET", "/missing", "tok9"))
        entries.append(("POST", "/gen", "tokp", {"prompt": "x"}))
        result = runner.run("rotation", entries)
    finally:
        server.shutdown()
        server.server_close()
    seen = _Recorder.seen
    assert ("GET", "/v/3", "Bearer tok3", "") in seen
    assert ("POST", "/gen", "Bearer tokp", '{"prompt":"x"}') in seen
    counts = sorted(seen.values())
    assert len(counts) == len(entries)
    # Each entry in turn: no entry used twice before every other was used (plus the one
    # request wrk makes to check the script, and the preflight's).
    assert counts[-1] - counts[0] <= 3
    assert result["requests"] > 0
    assert result["statuses"]["404"] > 0
    assert result["non_2xx"] == result["statuses"]["404"]
    assert result["requests"] == sum(result["statuses"].values())
    # One request in eleven is a 404: far above 1%, so the scenario is flagged.
    assert result["flags"] and "non-2xx" in result["flags"][0]


def test_wrk_missing_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(bench_wrk.shutil, "which", lambda name: None)
    with pytest.raises(CommandError, match="apt-get install wrk"):
        bench.wrk_binary()


# --- parsing and maths ------------------------------------------------------------------------

SAMPLE = {
    "requests": 1000,
    "duration_us": 10_000_000,
    "bytes": 123456,
    "non_2xx": 5,
    "statuses": {"200": 995, "401": 5},
    "errors": {"connect": 0, "read": 1, "write": 0, "status": 5, "timeout": 2},
    "latency_ms": {"p50": 40.5, "p90": 80.25, "p99": 150.125, "mean": 45.0, "max": 300.0},
}


def test_wrk_report_is_parsed_into_2xx_rates_and_errors():
    result = bench.parse_wrk_report(SAMPLE)
    assert result["requests"] == 1000
    assert result["duration_s"] == 10.0
    assert result["rps"] == 100.0
    assert result["ok_rps"] == 99.5
    assert result["non_2xx"] == 5
    assert result["statuses"] == {"200": 995, "401": 5}
    assert result["socket_errors"] == {"connect": 0, "read": 1, "write": 0, "timeout": 2}
    assert result["latency_ms"]["p99"] == 150.12


def test_more_than_one_percent_non_2xx_is_flagged():
    assert bench.flags_of(bench.parse_wrk_report(SAMPLE)) == []  # 0.5%
    worse = {**SAMPLE, "statuses": {"200": 980, "401": 20}}
    flags = bench.flags_of(bench.parse_wrk_report(worse))
    assert len(flags) == 1 and "2.0% non-2xx" in flags[0] and "401" in flags[0]
    broken = {**SAMPLE, "errors": {**SAMPLE["errors"], "timeout": 50}}
    assert any("socket" in f for f in bench.flags_of(bench.parse_wrk_report(broken)))
    assert bench.flags_of(bench.parse_wrk_report({**SAMPLE, "requests": 0})) == [
        "no requests completed"
    ]


def _result(ok_rps, p50, p99):
    return {"ok_rps": ok_rps, "latency_ms": {"p50": p50, "p99": p99}}


def test_ratios_are_to_the_mean_of_both_me_runs():
    scenarios = {
        "healthz": _result(600.0, 10.0, 30.0),
        "me": _result(180.0, 40.0, 120.0),
        "feed_for_you": _result(20.0, 500.0, 900.0),
        "me_again": _result(220.0, 60.0, 180.0),
    }
    base = bench.add_ratios(scenarios)
    assert base == {
        "me_ok_rps": 200.0,
        "me_p50_ms": 50.0,
        "me_p99_ms": 150.0,
        "healthz_ok_rps": 600.0,
        "me_vs_healthz_rps": 0.333,
    }
    assert scenarios["feed_for_you"]["vs_me"] == {"rps": 0.1, "p50": 10.0, "p99": 6.0}
    assert scenarios["healthz"]["vs_me"]["rps"] == 3.0
    assert scenarios["me"]["vs_me"]["rps"] == 0.9


def test_a_label_replaces_only_its_own_entry(tmp_path):
    out = tmp_path / "bench-feed.json"
    out.write_text(json.dumps({"measured_at": "old single-run format", "feed": {}}))
    bench.merge_report(out, "200k", {"scenarios": {"me": 1}})
    assert json.loads(out.read_text()) == {"200k": {"scenarios": {"me": 1}}}
    bench.merge_report(out, "1m", {"scenarios": {"me": 2}})
    bench.merge_report(out, "200k", {"scenarios": {"me": 3}})
    assert json.loads(out.read_text()) == {
        "200k": {"scenarios": {"me": 3}},
        "1m": {"scenarios": {"me": 2}},
    }


# --- the profile summary ----------------------------------------------------------------------


def _raw_profile() -> str:
    master = 'process 100:"python -m uvicorn"'
    worker = 'process 101:"python -c from multiprocessing.spawn import spawn_main"'
    other = 'process 102:"python -c from multiprocessing.spawn import spawn_main"'
    loop = "Server.run (uvicorn/server.py:86);asyncio_run (uvicorn/_compat.py:30)"
    loop += ";Runner.run (asyncio/runners.py:118)"
    view = (
        "_worker (concurrent/futures/thread.py:83);"
        f"MetricsMiddleware.__call__ ({settings.BASE_DIR}/config/observability.py:44);"
        "APIView.dispatch (/v/lib/python3.11/site-packages/rest_framework/views.py:514);"
    )
    return "\n".join(
        [
            # The master (not a worker) and threads parked waiting for work.
            f"{master};Multiprocess.run (uvicorn/supervisors/multiprocess.py:203);"
            "Event.wait (threading.py:629) 50",
            f"{master};{worker};ConnectionPool.worker (psycopg_pool/pool.py:602);"
            "Queue.get (psycopg_pool/_acompat.py:63);Condition.wait (threading.py:331) 40",
            f"{master};{worker};{loop} 30",
            # The event loop at work: starting the thread a sync view runs in.
            f"{master};{worker};{loop};SyncToAsync.__call__ (asgiref/sync.py:567);"
            "Thread.start (threading.py:969) 10",
            # A view waiting on PostgreSQL, and the same view encoding JSON (another line).
            f"{master};{worker};{view}MeApi.get (accounts/apis.py:10);"
            "Cursor.execute (psycopg/cursor.py:97);Connection.wait (psycopg/connection.py:900) 60",
            f"{master};{worker};{view}MeApi.get (accounts/apis.py:12);"
            "dumps (json/__init__.py:231) 40",
            f"{master};{other};{view}MeApi.get (accounts/apis.py:10) 20",
            "not a stack line",
        ]
    )


def test_profile_summary_keeps_busy_request_threads_and_folds_chains():
    summary = bench.summarise_profile(_raw_profile(), pids={101})
    assert summary["samples"] == 40 + 30 + 10 + 60 + 40
    assert summary["busy_samples"] == 10 + 60 + 40
    assert summary["processes"] == 1
    inclusive = {row["frame"]: row for row in summary["inclusive"]}
    # Middleware -> dispatch -> view are on the same samples: one row, named by the view.
    assert inclusive["accounts/apis.py:MeApi.get"] == {
        "frame": "accounts/apis.py:MeApi.get",
        "percent": 90.9,
        "merged": 2,
    }
    assert inclusive["psycopg/connection.py:Connection.wait"]["percent"] == 54.5
    assert inclusive["psycopg/connection.py:Connection.wait"]["merged"] == 1
    assert inclusive["asgiref/sync.py:SyncToAsync.__call__"]["percent"] == 9.1
    # Only this repo and the serving stack: no stdlib frames, no idle pool.
    assert not any(f.startswith(("json/", "threading", "psycopg_pool")) for f in inclusive)
    assert summary["self"] == [
        {"frame": "psycopg/connection.py:Connection.wait", "percent": 54.5},
        {"frame": "accounts/apis.py:MeApi.get", "percent": 36.4},
        {"frame": "asgiref/sync.py:SyncToAsync.__call__", "percent": 9.1},
    ]


def test_profile_summary_of_per_pid_files_counts_every_sample():
    # `py-spy record --pid N` writes no process frames: every line is the worker's.
    raw = "\n".join(
        line.split(";", 2)[2] for line in _raw_profile().splitlines() if line.count(";") > 2
    )
    summary = bench.summarise_profile(raw)
    assert summary["busy_samples"] == 10 + 60 + 40 + 20


def test_profile_summary_of_nothing():
    assert bench.summarise_profile("") == {
        "samples": 0,
        "busy_samples": 0,
        "processes": 0,
        "inclusive": [],
        "self": [],
    }


# --- the broker purge -------------------------------------------------------------------------


def test_purge_removes_only_the_benchs_messages():
    import redis

    client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    key = "gpu"
    ours = json.dumps({"headers": {"argsrepr": "('aaaa-1111',)"}, "body": "x"})
    theirs = json.dumps({"headers": {"argsrepr": "('bbbb-2222',)"}, "body": "y"})
    client.delete(key)
    client.rpush(key, ours, theirs, "not json")
    try:
        assert bench.purge_broker({"aaaa-1111"}) == 1
        assert client.lrange(key, 0, -1) == [theirs.encode(), b"not json"]
    finally:
        client.delete(key)


def _message(task: str, argsrepr: str) -> str:
    return json.dumps({"headers": {"task": task, "argsrepr": argsrepr}, "body": "x"})


def test_purge_by_task_leaves_other_tasks_naming_the_same_id():
    import redis

    client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    refresh = _message(server.ORDER_REFRESH, "('user-1',)")
    embed = _message("feed.tasks.preference_embed", "('user-1',)")
    client.delete("default")
    client.rpush("default", refresh, embed)
    try:
        assert bench.purge_broker({"user-1"}, task=server.ORDER_REFRESH) == 1
        assert client.lrange("default", 0, -1) == [embed.encode()]
    finally:
        client.delete("default")


def test_sent_tasks_counts_the_refreshes_that_name_a_viewer(monkeypatch):
    from config.celery import app
    from config.core.redis import publish
    from feed.tasks import feed_order_refresh, preference_embed

    # As the bench's server publishes (SERVER_ENV): with task-sent events, off by default.
    env = server.server_env(timeout=1, extra_env=bench.SERVER_ENV)
    assert env["CELERY_TASK_SEND_SENT_EVENT"] == "1"
    monkeypatch.setattr(app.conf, "task_send_sent_event", True)
    sent = events.SentTasks(task=server.ORDER_REFRESH, ids={"viewer-1", "viewer-2"})
    sent.start()
    try:
        publish(feed_order_refresh, "viewer-1")
        publish(feed_order_refresh, "viewer-2")
        publish(feed_order_refresh, "someone-else")  # another process sharing the broker
        publish(preference_embed, "viewer-1")  # another task
        deadline = time.monotonic() + 10
        while sent.count() < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)  # the others, had they counted, would have arrived by now
        assert sent.count() == 2
    finally:
        sent.close()
        # Nothing consumes them here.
        bench.purge_broker({"viewer-1", "viewer-2", "someone-else"})
    assert not sent.thread.is_alive()


# One scenario's figures and a baseline, as a run's report holds them.
SCENARIO = {
    "ok_rps": 100.0,
    "latency_ms": {"p50": 10.0, "p90": 20.0, "p99": 30.0},
    "non_2xx": 0,
    "vs_me": {"rps": 1.0, "p50": 1.0, "p99": 1.0},
    "flags": [],
}
BASELINE = {"me_vs_healthz_rps": 0.5, "me_ok_rps": 100.0, "healthz_ok_rps": 200.0}


def test_report_lines_show_the_worker_and_read_reports_without_it():
    scenario = dict(SCENARIO)
    base = dict(BASELINE)
    rep = {
        "data": {"posts": 200},
        "baseline": base,
        "scenarios": {
            "feed_for_you": {**scenario, "worker": {"order_refresh_messages": 7, "cpu_s": 1.5}},
            "me": scenario,  # a report written before the worker was measured
        },
    }
    lines = report.report_lines(rep, "tiny")
    assert "refresh" in lines[1] and "wkr cpu" in lines[1]
    assert lines[2].split()[-2:] == ["7", "1.5"]
    assert lines[3].split()[-2:] == ["-", "-"]


# --- one short real run -----------------------------------------------------------------------


@pytest.fixture
def seeded():
    seed(SeedSpec(users=20, posts=200, events=400, follows_per_user=6, seed=5), quiet=True)
    yield
    # feed_feedevent is unmanaged, so the test flush does not empty it.
    seed_delete(quiet=True)


class _RecordedServer(bench.Server):
    """The bench's server, remembered with every process it ran."""

    started: list = []

    def wait(self, timeout: float = 60.0) -> None:
        import psutil

        super().wait(timeout)
        procs = []
        for pid in (self.proc.pid, self.worker.proc.pid):
            parent = psutil.Process(pid)
            procs += [parent, *parent.children(recursive=True)]
        self.started.append((self, procs))


def _alive(proc) -> bool:
    import psutil

    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@needs_wrk
@pytest.mark.integration
@pytest.mark.django_db(transaction=True)  # the uvicorn subprocess sees committed rows only
def test_a_short_real_run_measures_every_scenario_without_errors(seeded, tmp_path, monkeypatch):
    import redis

    from accounts.models import AuthToken
    from cameos.models import Cameo, CameoGrant
    from generation.models import Generation

    # Five viewers make every request of the run: keep the per-user throttle out of the way.
    monkeypatch.setenv("THROTTLE_USER", "1000000/min")
    # Every reuse of an order asks the worker to re-rank it (once a minute per viewer), so the
    # worker has work in a run this short.
    monkeypatch.setenv("RIFF_FEED_ORDER_REFRESH_SECONDS", "0")
    _RecordedServer.started = []
    monkeypatch.setattr(bench, "Server", _RecordedServer)
    out = tmp_path / "bench.json"
    call_command(
        "bench_feed",
        out=str(out),
        label="tiny",
        viewers=5,
        admission_callers=3,
        duration=1,
        warmup=1,
        min_follows=1,
        verbosity=0,
    )
    report = json.loads(out.read_text())["tiny"]
    assert list(report["scenarios"]) == [
        "healthz",
        "me",
        "feed_following",
        "feed_latest",
        "feed_for_you",
        "feed_following_later",
        "feed_latest_later",
        "feed_for_you_later",
        "admission",
        "me_again",
    ]
    for name, result in report["scenarios"].items():
        assert result["requests"] > 0, name
        assert result["non_2xx"] == 0, (name, result["statuses"])
        assert result["flags"] == [], name
        assert result["vs_me"]["rps"] is not None, name
    assert set(report["scenarios"]["admission"]["statuses"]) <= {"201", "202"}
    assert report["settings"]["viewers"] == 5
    assert report["settings"]["cameos_per_admission"] == 2
    assert report["baseline"]["me_vs_healthz_rps"] > 0
    assert report["profile"] is None
    # The worker ran beside the server and re-ranked the orders the For You pages reused.
    assert report["settings"]["celery_worker"] == {"queues": ["default"], "concurrency": 1}
    workers = {name: result["worker"] for name, result in report["scenarios"].items()}
    assert all(w["cpu_s"] >= 0 for w in workers.values()), workers
    assert all(isinstance(w["order_refresh_messages"], int) for w in workers.values()), workers
    assert workers["feed_for_you"]["order_refresh_messages"] >= 1, workers
    assert workers["me"]["order_refresh_messages"] == 0, workers
    assert sum(w["cpu_s"] for w in workers.values()) > 0
    # Where the CPU went: the server answered every scenario, wrk sent every request.
    for name, result in report["scenarios"].items():
        per = result["cpu"]["ms_per_request"]
        assert per["server"] > 0 and per["wrk"] > 0, (name, result["cpu"])
        assert result["cpu"]["total_ms_per_request"] >= per["server"] + per["wrk"], name
    # The refreshes it had not run when it stopped were purged with the rest.
    assert report["cleanup"]["order_refresh_messages_purged"] >= 0
    client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    left = [json.loads(raw)["headers"]["task"] for raw in client.lrange("default", 0, -1)]
    assert server.ORDER_REFRESH not in left
    # uvicorn, its workers, the Celery worker and its pool child are all gone.
    [(ran, procs)] = _RecordedServer.started
    assert len(procs) >= 4
    assert ran.proc.poll() is not None and ran.worker.proc.poll() is not None
    assert not [p for p in procs if _alive(p)]
    # Every 2xx admission left a generation; a few more answered after wrk stopped counting.
    cleanup = report["cleanup"]
    extra = cleanup["generations_deleted"] - cleanup["admissions_counted_2xx"]
    assert 0 <= extra <= 2 * report["settings"]["connections"]
    assert cleanup["broker_messages_purged"] == cleanup["generations_deleted"]
    # What earlier runs deleted was vacuumed before this one measured (bench.settle_tables).
    assert set(cleanup["vacuumed_dead_rows"]) == {
        "accounts_authtoken",
        "cameos_cameo",
        "cameos_cameogrant",
        "generation_generation",
        "generation_generationcameo",
    }
    # Nothing the bench made is left behind.
    assert not AuthToken.objects.filter(user_agent="bench_feed").exists()
    assert not Cameo.objects.filter(handle__startswith="benchfeed").exists()
    assert not CameoGrant.objects.exists()
    assert not Generation.objects.filter(prompt__startswith=bench.ADMISSION_PROMPT).exists()


def test_cpu_ledger_charges_each_process_to_its_group():
    """A busy child stands in for the server (its pid names it), and a reaped child for wrk
    (it has exited before the pass ends, like wrk)."""
    burn = "import time\nend = time.process_time() + 0.3\nwhile time.process_time() < end: pass"
    server_like = subprocess.Popen([sys.executable, "-c", burn + "\ntime.sleep(30)"])
    try:
        ledger = CpuLedger(server_pid=server_like.pid)
        ledger.start()
        subprocess.run([sys.executable, "-c", burn], check=True)  # reaped: counted as wrk
        time.sleep(0.5)  # the server stand-in finishes its burn
        got = ledger.stop(requests=100, seconds=1.0)
    finally:
        server_like.kill()
        server_like.wait()
    assert set(got["cpu_s"]) == set(GROUPS)
    assert 0.2 <= got["cpu_s"]["wrk"] <= 1.0, got
    assert 0.1 <= got["cpu_s"]["server"] <= 0.5, got
    # cpu_s is rounded to 10 ms, the per-request figure is not.
    assert got["ms_per_request"]["wrk"] == pytest.approx(10 * got["cpu_s"]["wrk"], abs=0.06)
    assert got["total_ms_per_request"] == pytest.approx(10 * sum(got["cpu_s"].values()), abs=0.3)
    assert 0 < got["busy_share"] <= 1
    assert CpuLedger().stop(requests=0, seconds=1.0)["total_ms_per_request"] is None


def test_report_lines_show_cpu_per_request_when_measured():
    scenario = dict(SCENARIO)
    cpu = {
        "ms_per_request": {g: 0.0 for g in GROUPS} | {"server": 1.25, "postgres": 0.5},
        "total_ms_per_request": 1.75,
        "busy_share": 0.9,
    }
    base = dict(BASELINE)
    rep = {"data": {"posts": 200}, "baseline": base, "scenarios": {"me": {**scenario, "cpu": cpu}}}
    lines = report.report_lines(rep)
    at = next(i for i, line in enumerate(lines) if line.startswith("CPU ms per request"))
    assert lines[at].split()[4:] == ["total", *GROUPS, "busy"]
    assert lines[at + 1].split() == [
        "GET",
        "/me",
        "1.750",
        "1.250",
        "0.500",
        "0.000",
        "0.000",
        "0.000",
        "0.000",
        "0.90",
    ]
    rep["scenarios"]["me"].pop("cpu")
    assert not [line for line in report.report_lines(rep) if line.startswith("CPU ms")]


@pytest.mark.django_db(transaction=True)  # VACUUM runs outside a transaction only
def test_settle_tables_vacuums_what_a_run_fills_and_empties(make_user):
    from django.db import connection

    from accounts.models import AuthToken
    from accounts.tokens import token_issue
    from config.devtools.bench.feed.admission import settle_tables

    user = make_user()
    for _ in range(30):
        token_issue(user=user, user_agent="settle")
    AuthToken.objects.filter(user_agent="settle").delete()
    with connection.cursor() as cursor:
        cursor.execute("SELECT now()")
        (started,) = cursor.fetchone()
    got = settle_tables()
    assert all(isinstance(n, int) and n >= 0 for n in got.values())
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute("SELECT relname FROM pg_stat_user_tables WHERE last_vacuum >= %s", [started])
        vacuumed = {row[0] for row in cursor.fetchall()}
    assert set(got) <= vacuumed

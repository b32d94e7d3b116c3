"""wrk and its script: the request list `wrk/rotate.lua` walks, one wrk run per pass, the JSON
the script writes read back into this bench's figures, and the flags of a run not to trust."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from django.core.management.base import CommandError

from .client import preflight
from .cpu import CpuLedger

if TYPE_CHECKING:
    from .profile import Profiler

LUA = Path(__file__).parent.parent / "wrk" / "rotate.lua"
# Share of non-2xx (or socket errors) above which a scenario is flagged.
FLAG_SHARE = 0.01


def write_request_list(path: Path, entries: Iterable[tuple]) -> int:
    """Writes the list `rotate.lua` reads: `(method, path, token[, body])` per request, a body
    being JSON-serialisable (written on one line). Returns the number of lines."""
    lines = []
    for entry in entries:
        method, target, token, *rest = entry
        fields = [method, target, token or ""]
        if rest and rest[0] is not None:
            fields.append(json.dumps(rest[0], separators=(",", ":")))
        if any(not isinstance(f, str) or "\t" in f or "\n" in f for f in fields):
            raise ValueError(f"request list fields must be strings without tabs: {entry!r}")
        lines.append("\t".join(fields))
    if not lines:
        raise ValueError("an empty request list")
    path.write_text("\n".join(lines) + "\n")
    return len(lines)


def wrk_binary() -> str:
    found = shutil.which("wrk")
    if not found:
        raise CommandError(
            "bench_feed measures with wrk, which is not installed: apt-get install wrk"
        )
    return found


def parse_wrk_report(raw: dict) -> dict:
    """The JSON `rotate.lua` writes -> this bench's figures (req/s of all responses and of 2xx
    only; latency percentiles are of all responses)."""
    seconds = raw["duration_us"] / 1e6
    statuses = {str(k): int(v) for k, v in sorted(raw.get("statuses", {}).items())}
    ok = sum(n for code, n in statuses.items() if 200 <= int(code) <= 299)
    requests = int(raw["requests"])
    non_2xx = requests - ok
    errors = {k: int(raw["errors"].get(k, 0)) for k in ("connect", "read", "write", "timeout")}
    return {
        "requests": requests,
        "duration_s": round(seconds, 3),
        "rps": round(requests / seconds, 1) if seconds else None,
        "ok_rps": round(ok / seconds, 1) if seconds else None,
        "non_2xx": non_2xx,
        "statuses": statuses,
        "socket_errors": errors,
        "latency_ms": {k: round(float(v), 2) for k, v in raw["latency_ms"].items()},
    }


def flags_of(result: dict) -> list[str]:
    """Why a scenario's figures can't be trusted (empty: they can)."""
    flags = []
    total = result["requests"]
    if not total:
        return ["no requests completed"]
    if result["non_2xx"] / total > FLAG_SHARE:
        flags.append(f"{result['non_2xx'] / total:.1%} non-2xx {result['statuses']}")
    errors = sum(result["socket_errors"].values())
    if errors / total > FLAG_SHARE:
        flags.append(f"socket errors {result['socket_errors']}")
    return flags


class Runner:
    """Runs wrk scenarios against one server."""

    def __init__(self, *, port, connections, duration, warmup, timeout, workdir, log, server=None):
        self.port = port
        self.server = server
        self.wrk_path = wrk_binary()
        self.connections = connections
        self.threads = min(2, connections)
        self.duration = duration
        self.warmup = warmup
        self.timeout = timeout
        self.workdir = workdir
        self.log = log

    def wrk(self, list_path: Path, *, seconds: int, offset: int, name: str) -> dict:
        report = self.workdir / f"{name}.json"
        report.unlink(missing_ok=True)
        cmd = [
            self.wrk_path,
            *("-t", str(self.threads), "-c", str(self.connections), "-d", f"{seconds}s"),
            *("--timeout", f"{int(self.timeout)}s", "-s", str(LUA)),
            f"http://127.0.0.1:{self.port}",
            *("--", str(list_path), str(offset), str(self.threads), str(report)),
        ]
        done = subprocess.run(  # noqa: S603 - wrk with our arguments
            cmd, capture_output=True, text=True, timeout=seconds + self.timeout + 60
        )
        if done.returncode != 0 or not report.exists():
            raise CommandError(f"wrk failed ({done.returncode}): {done.stderr or done.stdout}")
        return parse_wrk_report(json.loads(report.read_text()))

    def run(self, name: str, entries: list[tuple], *, profiler: Profiler | None = None) -> dict:
        list_path = self.workdir / f"{name}.txt"
        size = write_request_list(list_path, entries)
        if self.server:
            self.server.check(f"the run before {name}")
        preflight(self.port, entries[0], name=name, timeout=self.timeout)
        offset, warm = 0, None
        if self.warmup:
            warm = self.wrk(list_path, seconds=self.warmup, offset=0, name=f"{name}-warmup")
            # Start where the warm-up stopped (plus what it had in flight): fresh viewers.
            offset = warm["requests"] + self.connections
        ledger = CpuLedger(
            server_pid=self.server.proc.pid if self.server else None,
            worker_pid=self.server.worker.proc.pid if self.server else None,
        )
        ledger.start()
        result = self.wrk(list_path, seconds=self.duration, offset=offset, name=name)
        result["cpu"] = ledger.stop(requests=result["requests"], seconds=self.duration)
        if self.server:
            self.server.check(name)
        if profiler:
            profiler.start(name)
            try:
                spied = self.wrk(
                    list_path,
                    seconds=self.duration,
                    offset=offset + result["requests"] + self.connections,
                    name=f"{name}-profiled",
                )
            finally:
                summary = profiler.stop()
            summary["profiled_pass"] = {
                "ok_rps": spied["ok_rps"],
                "non_2xx": spied["non_2xx"],
                "latency_ms": spied["latency_ms"],
            }
        result["list_size"] = size
        result["warmup_requests"] = warm["requests"] if warm else 0
        result["warmup_ok"] = warm["requests"] - warm["non_2xx"] if warm else 0
        result["flags"] = flags_of(result)
        lat = result["latency_ms"]
        flagged = f"  FLAGGED: {'; '.join(result['flags'])}" if result["flags"] else ""
        self.log(
            f"  {name:<22}{result['ok_rps']:>8} req/s  p50 {lat['p50']} ms  p99 {lat['p99']} ms"
            f"  non-2xx {result['non_2xx']}  cpu ms/req {_cpu_line(result['cpu'])}{flagged}"
        )
        return result


def _cpu_line(cpu: dict) -> str:
    per = cpu["ms_per_request"]
    parts = [f"{group} {per[group]}" for group in per if per[group]]
    return f"{cpu['total_ms_per_request']} ({', '.join(parts)})"


def _wrk_version() -> str:
    done = subprocess.run(  # noqa: S603 - wrk prints its version and usage
        [wrk_binary(), "--version"], capture_output=True, text=True
    )
    return (
        (done.stdout or done.stderr).splitlines()[0].strip() if done.stdout or done.stderr else ""
    )

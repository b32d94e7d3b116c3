"""Where the machine's CPU went during a scenario, by kind of process.

wrk, uvicorn, PostgreSQL, Redis and the Celery worker share the same cores, so a request's
cost is the CPU every one of them spends on it, not only the server's. `CpuLedger` reads the
CPU seconds of every process on the machine before and after a measured pass and charges the
difference to a group by process name and ancestry: `server` (the uvicorn master and its
workers), `worker` (the Celery worker and its pool), `postgres`, `redis`, `wrk`, and `other`
(the bench itself, the kernel's threads, whatever else runs). Divided by the requests
answered, the figures say how many milliseconds of CPU each part of the system spends per
request: what a change must cut to raise throughput on this box.

wrk is this process's child and has exited (and been reaped) by the time the pass ends, so
its share is read from this process's children's usage instead (`RUSAGE_CHILDREN`, which
grows only when a child is reaped: wrk, during a pass). Any other process that exits during
the pass loses its CPU from the ledger (psutil can't read it after); on this bench that is
rare (PostgreSQL backends are pooled) and it only makes `other` smaller.
"""

from __future__ import annotations

import os
import resource

import psutil

GROUPS = ("server", "postgres", "redis", "wrk", "worker", "other")


def _group(proc: psutil.Process, server_pids: set[int], worker_pids: set[int]) -> str:
    if proc.pid in server_pids:
        return "server"
    if proc.pid in worker_pids:
        return "worker"
    name = proc.info["name"] or ""
    if name.startswith("postgres"):
        return "postgres"
    if name.startswith("redis"):
        return "redis"
    if name == "wrk":
        return "wrk"
    return "other"


def _family(pid: int | None) -> set[int]:
    if pid is None:
        return set()
    try:
        root = psutil.Process(pid)
        return {pid, *(p.pid for p in root.children(recursive=True))}
    except psutil.NoSuchProcess:
        return set()


def _reaped_children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class CpuLedger:
    """CPU seconds by group between `start()` and `stop()`."""

    def __init__(self, *, server_pid: int | None = None, worker_pid: int | None = None) -> None:
        self.server_pid = server_pid
        self.worker_pid = worker_pid
        self._before: dict[int, tuple[str, float]] = {}
        self._children_before = 0.0

    def _read(self) -> dict[int, tuple[str, float]]:
        server, worker = _family(self.server_pid), _family(self.worker_pid)
        seen: dict[int, tuple[str, float]] = {}
        for proc in psutil.process_iter(["name", "cpu_times"]):
            times = proc.info["cpu_times"]
            if times is None:
                continue
            seen[proc.pid] = (_group(proc, server, worker), times.user + times.system)
        return seen

    def start(self) -> None:
        self._before = self._read()
        self._children_before = _reaped_children_cpu()

    def stop(self, *, requests: int, seconds: float) -> dict:
        after = self._read()
        spent = dict.fromkeys(GROUPS, 0.0)
        for pid, (group, cpu) in after.items():
            # A process that started during the pass counts from zero.
            spent[group] += cpu - self._before.get(pid, (group, 0.0))[1]
        spent["wrk"] += _reaped_children_cpu() - self._children_before
        total = sum(spent.values())
        ms_per_request = {
            group: round(1000 * cpu / requests, 3) if requests else None
            for group, cpu in spent.items()
        }
        return {
            "cpu_s": {group: round(cpu, 2) for group, cpu in spent.items()},
            "ms_per_request": ms_per_request,
            "total_ms_per_request": round(1000 * total / requests, 3) if requests else None,
            # Of the machine's capacity over the pass: below 1, the cores were not saturated.
            "busy_share": round(total / (seconds * (os.cpu_count() or 1)), 3) if seconds else None,
        }

"""`--profile`: py-spy on the uvicorn workers during an extra pass of a scenario, and the
summary of its raw stacks into the frames of this repository and of the serving stack."""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from django.conf import settings
from django.core.management.base import CommandError

# Frames the profile summary keeps: this repository and the stack that serves it (asgiref is
# Django's sync/async bridge: a sync view on ASGI pays its thread hand-offs there).
OWN_PACKAGES = frozenset(
    {"accounts", "cameos", "rights", "generation", "feed", "remix", "moderation", "config"}
)
SERVING_PACKAGES = frozenset(
    {"django", "rest_framework", "psycopg", "psycopg_pool", "redis", "uvicorn", "asgiref"}
)
# Calls on the same samples but for this share of busy samples are one row of the summary.
CHAIN_SLACK = 0.02
# Where an idle event loop is sampled (uvloop shows no Python frame below Runner.run).
IDLE_LOOP_LEAVES = frozenset(
    {
        ("Runner.run", "asyncio/runners.py"),
        ("BaseSelector.select", "selectors.py"),
        ("EpollSelector.select", "selectors.py"),
    }
)


class Profiler:
    """py-spy (`record --idle --nonblocking --format raw`) on each uvicorn worker while a
    scenario runs an extra, profiled pass: sampling costs CPU on the same machine (on 2 cores
    it cut /me's req/s to a fifth to a third), so the measured figures never come from a profiled
    pass; the profiled pass's own figures are kept beside its summary."""

    def __init__(self, *, master_pid: int, rate: int, workdir: Path, keep: Path | None = None):
        import psutil

        self.binary = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
        if not Path(self.binary).exists():
            raise CommandError("--profile needs py-spy: pip install py-spy")
        # The workers, not multiprocessing's resource tracker (also a child of the master).
        self.workers = sorted(
            p.pid
            for p in psutil.Process(master_pid).children()
            if "resource_tracker" not in " ".join(p.cmdline())
        )
        self.rate = rate
        self.workdir = workdir
        self.keep = keep
        self.summaries: dict[str, dict] = {}
        self.procs: list[tuple[Path, subprocess.Popen]] = []

    def start(self, name: str) -> None:
        self.name = name
        for pid in self.workers:
            path = self.workdir / f"{name}.{pid}.pyspy.txt"
            proc = subprocess.Popen(  # noqa: S603 - py-spy with our arguments
                [
                    self.binary,
                    "record",
                    *("--pid", str(pid), "--idle", "--nonblocking", "--rate", str(self.rate)),
                    *("--format", "raw", "--output", str(path)),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            self.procs.append((path, proc))
        time.sleep(0.5)  # attached before the profiled requests start

    def stop(self) -> dict:
        procs, self.procs = self.procs, []
        texts = []
        for path, proc in procs:
            proc.send_signal(signal.SIGINT)  # py-spy writes its file on Ctrl-C
            try:
                _, err = proc.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                err = b"timed out"
            if not path.exists():
                raise CommandError(
                    f"py-spy wrote no profile: {err.decode(errors='replace')[-500:]}"
                )
            texts.append(path.read_text(errors="replace"))
            if self.keep:
                # Collapsed stacks: flamegraph.pl or speedscope render them.
                self.keep.mkdir(parents=True, exist_ok=True)
                shutil.copy(path, self.keep / path.name)
        summary = summarise_profile("\n".join(texts))
        summary["processes"] = sum(1 for t in texts if t.strip())
        self.summaries[self.name] = summary
        return summary

    def close(self) -> None:
        for _, proc in self.procs:
            if proc.poll() is None:
                proc.kill()


FRAME_RE = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")
PROCESS_RE = re.compile(r"^process (?P<pid>\d+):")


def _module_path(file: str) -> str:
    if "site-packages/" in file:
        return file.rsplit("site-packages/", 1)[1]
    base = str(settings.BASE_DIR).rstrip("/") + "/"
    return file[len(base) :] if file.startswith(base) else file


def _busy(frames: list[tuple[str, str]], tops: list[str]) -> bool:
    """A thread serving a request: in Django, DRF or this repo's code, in uvicorn's protocol
    code, or the event loop doing anything but waiting for events."""
    if any(t in OWN_PACKAGES or t in ("django", "rest_framework") for t in tops):
        return True
    if any(file.startswith("uvicorn/protocols/") for _, file in frames):
        return True
    on_loop = any(frame == ("Server.run", "uvicorn/server.py") for frame in frames)
    return on_loop and frames[-1] not in IDLE_LOOP_LEAVES


def summarise_profile(raw: str, *, pids: set[int] | None = None, top: int = 12) -> dict:
    """py-spy's raw (collapsed) stacks -> the `top` frames of this repo and the serving stack.

    `inclusive`: share of busy samples with the function anywhere on the stack. A chain of
    calls on (nearly: CHAIN_SLACK of busy samples) the same samples, such as the middleware
    stack, is one row named by its deepest function, `merged` counting the callers folded in.
    `self`: share of busy samples whose deepest such frame it is. Busy samples are those of
    threads serving a request (`_busy`): a view waiting on PostgreSQL counts, an idle event
    loop or a pool thread waiting for work does not. Only processes in `pids` count when given
    (raw files of `--subprocesses` name them)."""
    weight: list[int] = []  # per busy stack
    on: dict[str, list[int]] = {}  # frame -> the busy stacks it is on
    depth: Counter = Counter()  # frame -> summed depth of its deepest occurrence
    deepest: Counter = Counter()
    total = 0
    seen: set[int] = set()
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames, pid = [], None
        for part in stack.split(";"):
            proc = PROCESS_RE.match(part)
            if proc:
                pid = int(proc["pid"])
            elif m := FRAME_RE.match(part):
                frames.append((m["func"], _module_path(m["file"])))
        if pids is not None and pid not in pids:
            continue
        total += int(count)
        if pid is not None:
            seen.add(pid)
        tops = [f.split("/", 1)[0] for _, f in frames]
        if not _busy(frames, tops):
            continue
        index = len(weight)
        weight.append(int(count))
        owned = {}
        for level, ((func, file), t) in enumerate(zip(frames, tops, strict=True)):
            if t in OWN_PACKAGES or t in SERVING_PACKAGES:
                owned[f"{file}:{func}"] = level
        for name, level in owned.items():
            on.setdefault(name, []).append(index)
            depth[name] += level
        if owned:
            deepest[max(owned, key=owned.__getitem__)] += int(count)
    busy = sum(weight)
    # Walk frames from the heaviest down; one on a subset of an earlier row's samples, within
    # 2% of busy of that row's weight, is the same path one call deeper: it takes the row over.
    rows: list[dict] = []
    ordered = sorted(on, key=lambda n: (-sum(weight[i] for i in on[n]), n))
    for name in ordered:
        stacks = set(on[name])
        n = sum(weight[i] for i in stacks)
        for row in rows:
            if row["n"] - n <= busy * CHAIN_SLACK and stacks <= row["stacks"]:
                deeper = max((row["name"], name), key=lambda f: depth[f] / len(on[f]))
                row.update(name=deeper, stacks=stacks, n=n, merged=row["merged"] + 1)
                break
        else:
            rows.append({"name": name, "stacks": stacks, "n": n, "merged": 0})
    rows.sort(key=lambda row: -row["n"])
    return {
        "samples": total,
        "busy_samples": busy,
        "processes": len(seen),
        "inclusive": [
            {"frame": r["name"], "percent": round(100 * r["n"] / busy, 1), "merged": r["merged"]}
            for r in rows[:top]
        ],
        "self": [
            {"frame": name, "percent": round(100 * n / busy, 1)}
            for name, n in deepest.most_common(top)
        ],
    }

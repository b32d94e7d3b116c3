"""The development commands live in config.devtools, keep their names and flags, and no
production app carries tooling any more."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import get_commands, load_command_class

# Every flag each command had before the move (besides Django's own).
FLAGS = {
    "seed_feed": {
        "users",
        "posts",
        "events",
        "follows_per_user",
        "likes",
        "days",
        "seed",
        "reset",
        "if_missing",
    },
    # Reworked for issue #31 (wrk from outside): --requests/--concurrency/--pages/--max-seconds
    # gave way to a fixed duration per scenario and wrk connections.
    "bench_feed": {
        "out",
        "label",
        "viewers",
        "connections",
        "duration",
        "warmup",
        "workers",
        "admission_callers",
        "min_follows",
        "seed",
        "timeout",
        "profile",
        "inline",
        "profile_dir",
    },
    "bench_generation": {"requests", "dispatch", "e2e", "busy", "out"},
    "bench_engine": {"out", "weights", "device", "threads", "reps"},
}
TOOLS = ("seed_feed", "bench_feed", "bench_generation", "bench_engine")
ENGINE_SHIMS = ("train_engine", "evaluate_engine")
APPS = ("accounts", "cameos", "rights", "generation", "feed", "remix", "moderation")
DJANGO_FLAGS = {
    "help",
    "version",
    "verbosity",
    "settings",
    "pythonpath",
    "traceback",
    "no_color",
    "force_color",
    "skip_checks",
}


@pytest.mark.parametrize("name", TOOLS + ENGINE_SHIMS)
def test_each_tool_command_is_served_by_devtools(name):
    assert get_commands()[name] == "config.devtools"


@pytest.mark.parametrize("name", sorted(FLAGS))
def test_each_command_keeps_its_flags(name):
    parser = load_command_class("config.devtools", name).create_parser("manage.py", name)
    flags = {action.dest for action in parser._actions} - DJANGO_FLAGS
    assert flags == FLAGS[name]


def test_no_production_app_carries_tooling():
    base = Path(settings.BASE_DIR)
    for app in APPS:
        for name in TOOLS + ENGINE_SHIMS:
            assert not (base / app / "management" / "commands" / f"{name}.py").exists()
    for module in ("feed.seeding", "generation.engine.bench"):
        assert importlib.util.find_spec(module) is None, module
    # The engine keeps its own CLIs, which the shims call (and which run without Django).
    for module in ("generation.engine.training.cli", "generation.engine.evaluation.run"):
        assert importlib.util.find_spec(module) is not None, module


def test_nothing_outside_devtools_imports_it():
    base = Path(settings.BASE_DIR)
    offenders = [
        str(path.relative_to(base))
        for app in (*APPS, "config")
        for path in (base / app).rglob("*.py")
        if "devtools" not in path.parts
        and "config.devtools" in path.read_text()
        and path.relative_to(base).as_posix() != "config/settings.py"  # INSTALLED_APPS
    ]
    assert offenders == []

"""The one hooks mechanism (config.core.hooks): declarations, the runner, and the startup check."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Protocol

import pytest
from django.core.management import call_command

from config.core import hooks

ROOT = Path(__file__).resolve().parent.parent
APPS = ("accounts", "cameos", "rights", "generation", "feed", "remix", "moderation", "config")


class Pinged(Protocol):
    def __call__(self, *, who: str) -> None: ...


PINGED = hooks.define("test.pinged", Pinged)
ANSWER = hooks.define("test.answer", Pinged, provider=True)
HEARD: list[str] = []


def ping(*, who: str) -> str:
    HEARD.append(who)
    return who.upper()


def ping_loosely(**kwargs) -> None:
    HEARD.append(f"loose {kwargs['who']}")


def wrong_signature(*, whom: str) -> None:  # pragma: no cover - never called
    raise AssertionError


def with_hooks(settings, **registered):
    settings.RIFF_HOOKS = {**settings.RIFF_HOOKS, **registered}


def test_the_shipped_configuration_passes_the_check():
    assert hooks.check() == []
    call_command("check", "--fail-level", "ERROR")


def test_every_registered_name_is_declared_with_a_protocol(settings):
    hooks.check()  # imports every app's hooks module
    declared = hooks.declared()
    for name in settings.RIFF_HOOKS:
        assert name in declared, name
        assert declared[name].parameters, name


def test_run_calls_each_implementation_in_order(settings):
    with_hooks(settings, **{"test.pinged": [f"{__name__}.ping", f"{__name__}.ping_loosely"]})
    HEARD.clear()
    assert hooks.run("test.pinged", who="ann") == ["ANN", None]
    assert HEARD == ["ann", "loose ann"]


def test_arguments_must_match_the_protocol(settings):
    with_hooks(settings, **{"test.pinged": [f"{__name__}.ping"]})
    with pytest.raises(TypeError):
        hooks.run("test.pinged")
    with pytest.raises(TypeError):
        hooks.run("test.pinged", who="x", extra=1)
    with pytest.raises(TypeError):  # as many arguments, another name
        hooks.run("test.pinged", whom="x")
    with pytest.raises(LookupError):
        hooks.run("test.never.declared", who="x")


def test_a_provider_answers_once_or_not_at_all(settings):
    with_hooks(settings, **{"test.answer": []})
    assert hooks.provide("test.answer", who="x") is None
    with_hooks(settings, **{"test.answer": [f"{__name__}.ping"]})
    assert hooks.provide("test.answer", who="bo") == "BO"
    with pytest.raises(TypeError):
        hooks.provide("test.pinged", who="x")  # not a provider


@pytest.mark.parametrize(
    ("registered", "code"),
    [
        ({"test.no.such.hook": []}, "riff.E001"),
        ({"test.answer": [f"{__name__}.ping", f"{__name__}.ping"]}, "riff.E002"),
        ({"test.pinged": [f"{__name__}.not_here"]}, "riff.E003"),
        ({"test.pinged": ["no_such_module.fn"]}, "riff.E003"),
        ({"test.pinged": [f"{__name__}.wrong_signature"]}, "riff.E004"),
        ({"test.pinged": [f"{__name__}.HEARD"]}, "riff.E004"),  # not callable
    ],
)
def test_the_check_refuses_a_broken_registration(settings, registered, code):
    with_hooks(settings, **registered)
    assert [e.id for e in hooks.check()] == [code]


def test_no_production_module_resolves_hook_paths_itself():
    offenders = []
    for app in APPS:
        for path in (ROOT / app).rglob("*.py"):
            if path == ROOT / "config" / "core" / "hooks.py" or "migrations" in path.parts:
                continue
            text = path.read_text()
            if re.search(r"\bimport_string\b|settings\.RIFF_HOOKS", text):
                offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []

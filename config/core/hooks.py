"""Named hooks: how a lower layer calls behaviour an upper layer owns without importing it.

Imports flow one way (accounts -> cameos -> rights -> generation -> feed -> remix ->
moderation). When a lower layer must let upper ones act (an account is deleted, a cameo is
revoked, a video is removed, admission wants a remix parent's cameos), it *declares* a hook in
its own `hooks.py` with a typed Protocol saying what each implementation receives and returns,
and calls it through this module. Upper layers *register* implementations by dotted path in
one setting:

    RIFF_HOOKS = {"cameo.revoked": ["generation.services.on_cameo_revoked"], ...}

- `define(name, protocol, provider=False)` declares a hook (lower layer, at import);
- `run(name, **kwargs)` calls every implementation in order and returns their results;
- `provide(name, **kwargs)` calls the one implementation of a provider hook (None if unset);
- the system check `riff.E001`-`E004` (`check` below, registered by accounts' AppConfig)
  imports every registered path at startup, so a typo fails `manage.py check` and every
  process start, not the first request.

Keyword-only arguments everywhere, so an implementation that takes `**_` keeps working when a
hook gains an argument. No module outside this one resolves hook paths.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.utils.module_loading import import_string


@dataclass(frozen=True)
class Hook:
    name: str
    protocol: type
    # A provider hook has at most one implementation and `provide()` returns its answer.
    provider: bool = False

    # Read on every call of the hook: worked out once (inspect.signature on each call was 5 % of
    # an admission's CPU, which runs a dozen hooks; docs/bench-feed.md).
    @functools.cached_property
    def parameters(self) -> tuple[str, ...]:
        call = self.protocol.__call__
        return tuple(
            p.name
            for p in inspect.signature(call).parameters.values()
            if p.kind is inspect.Parameter.KEYWORD_ONLY
        )

    @functools.cached_property
    def parameter_set(self) -> frozenset[str]:
        return frozenset(self.parameters)


_HOOKS: dict[str, Hook] = {}
_RESOLVED: dict[tuple[str, tuple[str, ...]], list[Callable[..., Any]]] = {}


def define(name: str, protocol: type, *, provider: bool = False) -> Hook:
    """Declares hook `name`; its implementations are called with `protocol.__call__`'s
    keyword-only arguments. Declaring the same name twice with another protocol is a bug."""
    hook = Hook(name=name, protocol=protocol, provider=provider)
    existing = _HOOKS.get(name)
    if existing is not None and existing.protocol is not protocol:
        raise RuntimeError(f"hook {name!r} declared twice")
    _HOOKS[name] = hook
    return hook


def declared() -> dict[str, Hook]:
    return dict(_HOOKS)


def paths(name: str) -> tuple[str, ...]:
    return tuple(getattr(settings, "RIFF_HOOKS", {}).get(name, ()))


def implementations(name: str) -> list[Callable[..., Any]]:
    """The callables registered for `name`, imported once per distinct setting value."""
    key = (name, paths(name))
    found = _RESOLVED.get(key)
    if found is None:
        found = [import_string(path) for path in key[1]]
        _RESOLVED[key] = found
    return found


def _checked(name: str, kwargs: dict[str, Any]) -> Hook:
    hook = _HOOKS.get(name)
    if hook is None:
        raise LookupError(f"hook {name!r} is not declared")
    if kwargs.keys() != hook.parameter_set:
        raise TypeError(f"hook {name!r} takes {list(hook.parameters)}, got {sorted(kwargs)}")
    return hook


def run(name: str, **kwargs: Any) -> list[Any]:
    """Calls every implementation of `name`, in the order the setting lists them."""
    _checked(name, kwargs)
    return [fn(**kwargs) for fn in implementations(name)]


def provide(name: str, **kwargs: Any) -> Any:
    """The answer of the one implementation of provider hook `name`, or None if none is set."""
    hook = _checked(name, kwargs)
    if not hook.provider:
        raise TypeError(f"hook {name!r} is not a provider hook; use run()")
    found = implementations(name)
    return found[0](**kwargs) if found else None


def check(app_configs=None, **kwargs) -> list:
    """System check: every app's `hooks` module is imported (declarations), every key of
    RIFF_HOOKS names a declared hook, every path imports to a callable that accepts the hook's
    keyword arguments, and a provider hook has at most one implementation."""
    from django.core import checks
    from django.utils.module_loading import autodiscover_modules

    autodiscover_modules("hooks")
    errors = []
    for name, registered in getattr(settings, "RIFF_HOOKS", {}).items():
        hook = _HOOKS.get(name)
        if hook is None:
            errors.append(
                checks.Error(f"RIFF_HOOKS names an undeclared hook {name!r}", id="riff.E001")
            )
            continue
        if hook.provider and len(registered) > 1:
            errors.append(
                checks.Error(f"provider hook {name!r} takes one implementation", id="riff.E002")
            )
        for path in registered:
            try:
                fn = import_string(path)
            except ImportError as exc:
                errors.append(checks.Error(f"hook {name!r}: {exc}", id="riff.E003"))
                continue
            if not _accepts(fn, hook.parameters):
                errors.append(
                    checks.Error(
                        f"hook {name!r}: {path} does not accept {list(hook.parameters)}",
                        id="riff.E004",
                    )
                )
    return errors


def _accepts(fn: Any, names: tuple[str, ...]) -> bool:
    if not callable(fn):
        return False
    params = inspect.signature(fn).parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return True
    accepted = {
        p.name
        for p in params
        if p.kind in (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    }
    return set(names) <= accepted

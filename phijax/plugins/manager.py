"""Finding and loading plugins: one pluggy `PluginManager`, fed from the `phijax` entry-point group.

Built-ins (`phijax_plugins.*`) are entry points of the `phijax` distribution itself, declared in its
pyproject like any third-party plugin's, so they take the same path. Each entry point is loaded in
its own `try`: a package that fails to import, or whose hooks do not validate, becomes one
`PluginFailure` line and the others load (pluggy's `load_setuptools_entrypoints` would stop at the
first failure). Environment variables narrow what loads:

- `PHIJAX_DISABLE_PLUGIN_AUTOLOAD=1`: no third-party entry points (built-ins still load);
- `PHIJAX_PLUGINS=dist-a,dist-b`: only these third-party distributions (this wins over the above,
  as pytest's `-p` wins over its disabled autoload).

Loading is cheap: this module imports neither jax nor any plugin until asked.
"""

from __future__ import annotations

import difflib
import importlib.metadata
import os
import re
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pluggy

from phijax.plugins import hookspecs
from phijax.plugins.errors import PluginValidationError

PROJECT = "phijax"
ENTRY_POINT_GROUP = "phijax"
BUILTIN_DISTRIBUTION = "phijax"
DISABLE_AUTOLOAD_ENV = "PHIJAX_DISABLE_PLUGIN_AUTOLOAD"
ONLY_PLUGINS_ENV = "PHIJAX_PLUGINS"


@dataclass(frozen=True)
class PluginSource:
    """Where a loaded plugin object came from. `name` is its distribution (or in-process name)."""

    name: str
    version: str | None
    builtin: bool
    entry_point: str | None = None  # "name = module:attr", None for in-process plugins
    key: str = ""  # the name it has in the pluggy manager: "dist/entry-point-name"

    def label(self) -> str:
        """`dist 1.2 (entry point ep = mod)`: enough to find the package that needs fixing."""
        text = self.name if self.version is None else f"{self.name} {self.version}"
        return f"{text} (entry point {self.entry_point})" if self.entry_point else text


@dataclass(frozen=True)
class PluginFailure:
    """A plugin that did not (fully) load, with a one-line reason and the traceback for `--debug`."""

    plugin: str
    version: str | None
    entry_point: str | None
    reason: str
    traceback: str = ""

    def line(self) -> str:
        source = PluginSource(self.plugin, self.version, False, self.entry_point)
        return f"plugin {source.label()} failed: {self.reason}"


@dataclass
class LoadedPlugins:
    """The manager and what happened while filling it."""

    manager: pluggy.PluginManager
    plugins: list[PluginSource] = field(default_factory=list)
    failures: list[PluginFailure] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # third-party distributions left out by env vars


def create_manager() -> pluggy.PluginManager:
    """An empty pluggy manager that knows the phijax hookspecs."""
    pm = pluggy.PluginManager(PROJECT)
    pm.add_hookspecs(hookspecs)
    return pm


def load_plugins(
    environ: Mapping[str, str] | None = None,
    *,
    builtins: bool = True,
    third_party: bool = True,
    extra: Sequence[tuple[str, Any]] = (),
) -> LoadedPlugins:
    """Load entry-point plugins (filtered by `environ`, default `os.environ`), then `extra` objects.

    `extra` holds `(name, plugin_object)` pairs registered in-process (tests, notebooks); their
    validation errors raise `PluginValidationError` instead of being recorded, since the caller is
    the plugin's author.
    """
    loaded = LoadedPlugins(create_manager())
    environ = os.environ if environ is None else environ
    for ep in _select(_entry_points(), environ, loaded, builtins, third_party):
        _load_entry_point(loaded, ep)
    for name, obj in extra:
        source = PluginSource(name, None, False, None, key=name)
        add_plugin(loaded.manager, obj, source)
        loaded.plugins.append(source)
    return loaded


def add_plugin(pm: pluggy.PluginManager, obj: Any, source: PluginSource) -> None:
    """Register `obj` under `source.key` and validate its hooks; on error leave `pm` unchanged.

    Raises `PluginValidationError` naming the plugin: a `phijax_*` function without `@hookimpl`,
    an unknown (misspelled) hook name, a hook asking for arguments its spec does not give.
    """
    try:
        _register_checked(pm, obj, source)
    except _Invalid as err:
        raise PluginValidationError(f"plugin {source.label()}: {err}") from err.__cause__


class _Invalid(Exception):
    """Why a plugin object does not validate (without the plugin's label)."""


def _register_checked(pm: pluggy.PluginManager, obj: Any, source: PluginSource) -> None:
    _check_marked(obj)
    try:
        pm.register(obj, name=source.key or source.name)
    except pluggy.PluginValidationError as err:
        lines = [line.strip() for line in str(err).splitlines() if line.strip()]
        raise _Invalid(" ".join(lines[1:]) or lines[0]) from err
    except ValueError as err:  # the same object or name registered twice
        raise _Invalid(_first_line(err)) from err
    try:
        pm.check_pending()  # earlier plugins passed this check, so a failure belongs to `obj`
    except pluggy.PluginValidationError as err:
        pm.unregister(obj)
        raise _Invalid(_unknown_hook_message(pm, err)) from err


def normalize(distribution: str) -> str:
    """PyPA-normalised distribution name, for comparing what users type with what is installed."""
    return re.sub(r"[-_.]+", "-", distribution).lower()


# ------------------------------------------------------------------------------------ internals
def _entry_points() -> list[importlib.metadata.EntryPoint]:
    """This group's entry points, built-ins first, then by distribution name (a stable order)."""
    eps = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)

    def order(ep: importlib.metadata.EntryPoint) -> tuple[bool, str, str]:
        dist = _dist_name(ep)
        return (normalize(dist) != BUILTIN_DISTRIBUTION, normalize(dist), ep.name)

    return sorted(eps, key=order)


def _select(
    eps: list[importlib.metadata.EntryPoint],
    environ: Mapping[str, str],
    loaded: LoadedPlugins,
    builtins: bool,
    third_party: bool,
) -> list[importlib.metadata.EntryPoint]:
    only_text = environ.get(ONLY_PLUGINS_ENV, "").strip()
    only = {normalize(n.strip()) for n in only_text.split(",") if n.strip()}
    disabled = environ.get(DISABLE_AUTOLOAD_ENV, "").strip().lower() not in ("", "0", "false", "no")
    selected = []
    for ep in eps:
        dist = normalize(_dist_name(ep))
        if dist == BUILTIN_DISTRIBUTION:
            keep = builtins
        elif only:
            keep = third_party and dist in only
        else:
            keep = third_party and not disabled
        if keep:
            selected.append(ep)
        elif dist != BUILTIN_DISTRIBUTION and _dist_name(ep) not in loaded.skipped:
            loaded.skipped.append(_dist_name(ep))
    _report_missing(only, eps, loaded)
    return selected


def _report_missing(only: set[str], eps: list[importlib.metadata.EntryPoint], loaded: LoadedPlugins) -> None:
    installed = sorted({normalize(_dist_name(ep)) for ep in eps} - {BUILTIN_DISTRIBUTION})
    for name in sorted(only - set(installed)):
        known = ", ".join(installed) or "none"
        loaded.failures.append(
            PluginFailure(
                name,
                None,
                None,
                f"{ONLY_PLUGINS_ENV} names it, but no installed distribution by that name has a "
                f"`{ENTRY_POINT_GROUP}` entry point (installed plugins: {known}); fix the name or pip install it",
            )
        )


def _load_entry_point(loaded: LoadedPlugins, ep: importlib.metadata.EntryPoint) -> None:
    dist = _dist_name(ep)
    version = ep.dist.version if ep.dist is not None else None
    source = PluginSource(
        dist, version, normalize(dist) == BUILTIN_DISTRIBUTION, f"{ep.name} = {ep.value}", key=f"{dist}/{ep.name}"
    )
    try:
        _register_checked(loaded.manager, ep.load(), source)
    except Exception as err:  # noqa: BLE001 - any import error of a plugin is isolated and reported
        reason = str(err) if isinstance(err, _Invalid) else _describe(err)
        loaded.failures.append(PluginFailure(dist, version, source.entry_point, reason, traceback.format_exc()))
        return
    loaded.plugins.append(source)


def _check_marked(obj: Any) -> None:
    """A `phijax_*` function without `@hookimpl` would be silently ignored by pluggy: refuse it."""
    for attr in (a for a in dir(obj) if a.startswith("phijax_")):
        value = getattr(obj, attr, None)
        if callable(value) and not hasattr(value, f"{PROJECT}_impl"):
            raise _Invalid(
                f"{attr} is not decorated; add `from phijax.plugins import hookimpl` and `@hookimpl` above it"
            )


def _unknown_hook_message(pm: pluggy.PluginManager, err: Exception) -> str:
    specs = sorted(
        n for n, caller in vars(pm.hook).items() if isinstance(caller, pluggy.HookCaller) and caller.spec is not None
    )
    match = re.search(r"unknown hook '([^']+)'", str(err))
    hook = match.group(1) if match else "?"
    close = difflib.get_close_matches(hook, specs, n=1, cutoff=0.6)
    hint = f"did you mean {close[0]}?" if close else f"known hooks: {', '.join(specs)}"
    return f"unknown hook {hook}; {hint}"


def _dist_name(ep: importlib.metadata.EntryPoint) -> str:
    return ep.dist.name if ep.dist is not None else f"<unknown distribution of {ep.value}>"


def _describe(err: BaseException) -> str:
    return f"{type(err).__name__}: {_first_line(err)}"


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__

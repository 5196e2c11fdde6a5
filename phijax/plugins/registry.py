"""Components by kind and name: how the core reaches every plugin.

A config names components (`source: jsonl`, `verifier: math_answer`); the core looks them up here,
never by importing a plugin module:

    registry = get_registry()
    source = registry.create("data_sources", spec.source, **spec.options)

`get_registry()` loads the entry-point plugins once per process, lazily. Unknown names, names that
two plugins registered, and components that fail are `PluginError`s whose one-line messages name the
plugin and the fix. Plugin load failures are printed once to stderr, one warning line each.
"""

from __future__ import annotations

import contextlib
import difflib
import re
import sys
import threading
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from phijax.errors import PhijaxError
from phijax.plugins.errors import (
    ComponentError,
    DuplicateComponentError,
    PluginValidationError,
    UnknownComponentError,
)
from phijax.plugins.manager import LoadedPlugins, PluginFailure, PluginSource, load_plugins

KINDS: tuple[str, ...] = (
    "backends",
    "data_sources",
    "synthetic_generators",
    "reward_estimators",
    "verifiers",
    "evaluators",
    "metric_loggers",
    "commands",
)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def hook_name(kind: str) -> str:
    """The hook that registers components of `kind`: `phijax_register_<kind>`."""
    return f"phijax_register_{kind}"


def label(kind: str) -> str:
    """`data_sources` -> `data source`, for messages."""
    singular = {"data_sources": "data source", "commands": "command"}
    return singular.get(kind, kind[:-1].replace("_", " "))


@dataclass(frozen=True)
class Component:
    """One registered factory and the plugin (distribution name) that registered it."""

    kind: str
    name: str
    factory: Callable[..., Any]
    plugin: str


@dataclass(frozen=True)
class Conflict:
    """A name that two plugins registered for the same kind; looking it up is an error."""

    kind: str
    name: str
    plugins: tuple[str, str]

    def line(self) -> str:
        first, second = self.plugins
        return (
            f"{label(self.kind)} '{self.name}' is registered by both {first} and {second}; "
            f"uninstall one of them or select plugins with PHIJAX_PLUGINS"
        )


class Registry:
    """Factories by kind and name, plus the record of which plugins loaded and which failed."""

    def __init__(self) -> None:
        self._components: dict[str, dict[str, Component]] = {kind: {} for kind in KINDS}
        self.conflicts: list[Conflict] = []
        self.plugins: list[PluginSource] = []
        self.failures: list[PluginFailure] = []
        self.skipped: list[str] = []
        self.hooks: dict[str, list[str]] = {}  # plugin key -> hooks it implements

    # -------------------------------------------------------------------------------- filling
    def register(self, kind: str, name: str, factory: Callable[..., Any], plugin: str = "__main__") -> None:
        """Add `factory` as `name` of `kind`; a name already taken raises `DuplicateComponentError`."""
        _check_kind(kind)
        if not isinstance(name, str) or not _NAME.match(name):
            raise PluginValidationError(
                f"{label(kind)} name {name!r} from {plugin} is not a valid name; use letters, digits and _"
            )
        if not callable(factory):
            raise PluginValidationError(
                f"{label(kind)} '{name}' from {plugin}: the factory must be callable, got {type(factory).__name__}"
            )
        taken = self._components[kind].get(name)
        if taken is not None:
            conflict = Conflict(kind, name, (taken.plugin, plugin))
            raise DuplicateComponentError(conflict.line())
        self._components[kind][name] = Component(kind, name, factory, plugin)

    # -------------------------------------------------------------------------------- lookup
    def names(self, kind: str) -> list[str]:
        """Registered names of `kind`, sorted."""
        _check_kind(kind)
        return sorted(self._components[kind])

    def component(self, kind: str, name: str) -> Component:
        """The component `name` of `kind`; raises `UnknownComponentError` / `DuplicateComponentError`."""
        _check_kind(kind)
        for conflict in self.conflicts:
            if (conflict.kind, conflict.name) == (kind, name):
                raise DuplicateComponentError(conflict.line())
        found = self._components[kind].get(name)
        if found is None:
            raise UnknownComponentError(self._unknown_message(kind, name))
        return found

    def get(self, kind: str, name: str) -> Callable[..., Any]:
        """The factory registered as `name` of `kind`."""
        return self.component(kind, name).factory

    def plugin_of(self, kind: str, name: str) -> str:
        """The distribution (or in-process plugin name) that registered `name` of `kind`."""
        return self.component(kind, name).plugin

    # -------------------------------------------------------------------------------- use
    def create(self, kind: str, name: str, /, *args: Any, **options: Any) -> Any:
        """Build the component: `factory(*args, **options)`, errors reported with the plugin's name.

        A factory's `PhijaxError` (bad options) and any other exception (a plugin bug) become one
        `ComponentError` line naming the component and its plugin; the original is the `__cause__`.
        The result is checked against the kind's protocol (`phijax.plugins.protocols`).
        """
        component = self.component(kind, name)
        with self.attributed(kind, name):
            made = component.factory(*args, **options)
        problem = _protocol_problem(kind, made)
        if problem:
            raise ComponentError(f"{label(kind)} '{name}' (plugin {component.plugin}) {problem}")
        return made

    @contextlib.contextmanager
    def attributed(self, kind: str, name: str) -> Iterator[Component]:
        """Run code that uses a component; an exception from it becomes a `ComponentError` naming it."""
        component = self.component(kind, name)
        try:
            yield component
        except ComponentError:
            raise
        except Exception as err:
            what = str(err) if isinstance(err, PhijaxError) else f"{type(err).__name__}: {err}"
            first = what.strip().splitlines()[0] if what.strip() else type(err).__name__
            raise ComponentError(f"{label(kind)} '{name}' (plugin {component.plugin}) failed: {first}") from err

    # -------------------------------------------------------------------------------- report
    def components_of(self, plugin: str) -> dict[str, list[str]]:
        """Names registered by `plugin` (a distribution name), by kind; kinds with none left out."""
        out: dict[str, list[str]] = {}
        for kind in KINDS:
            names = sorted(n for n, c in self._components[kind].items() if c.plugin == plugin)
            if names:
                out[kind] = names
        return out

    def problems(self) -> list[str]:
        """One line per failed plugin and per conflicting name."""
        return [f.line() for f in self.failures] + [c.line() for c in self.conflicts]

    def _unknown_message(self, kind: str, name: str) -> str:
        known = self.names(kind)
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.5)
        hint = f"did you mean '{close[0]}'? " if close else ""
        listed = ", ".join(known) if known else "none"
        failed = f"; {len(self.failures)} plugin(s) failed to load" if self.failures else ""
        return (
            f"unknown {label(kind)} '{name}': {hint}registered {kind.replace('_', ' ')}: {listed}"
            f"{failed} (see `phijax plugins`)"
        )


# ------------------------------------------------------------------------------- building one
def build_registry(loaded: LoadedPlugins) -> Registry:
    """Call every plugin's register hooks, one plugin and one hook at a time, into a new `Registry`.

    A hook that raises is recorded as a failure of its plugin and what it registered in that call is
    dropped; a name registered twice becomes a `Conflict`; everything else stays usable.
    """
    registry = Registry()
    registry.failures = list(loaded.failures)
    registry.skipped = list(loaded.skipped)
    for source in loaded.plugins:
        obj = loaded.manager.get_plugin(source.key)
        callers = loaded.manager.get_hookcallers(obj) or []
        registry.hooks[source.key] = sorted(c.name for c in callers)
        for kind in KINDS:
            _run_register_hook(registry, loaded, source, kind)
        registry.plugins.append(source)
    return registry


def _run_register_hook(registry: Registry, loaded: LoadedPlugins, source: PluginSource, kind: str) -> None:
    caller = getattr(loaded.manager.hook, hook_name(kind))
    staged: list[tuple[str, Callable[..., Any]]] = []
    for impl in caller.get_hookimpls():
        if impl.plugin_name != source.key:
            continue
        args = {"register": lambda name, factory: staged.append((name, factory))}
        try:
            impl.function(*(args[a] for a in impl.argnames))
        except Exception as err:  # noqa: BLE001 - a plugin's bug must not take the others down
            registry.failures.append(
                PluginFailure(
                    source.name,
                    source.version,
                    source.entry_point,
                    f"hook {hook_name(kind)} raised {type(err).__name__}: {err}".splitlines()[0],
                    traceback.format_exc(),
                )
            )
            return
    for name, factory in staged:
        _add_staged(registry, source, kind, name, factory)


def _add_staged(registry: Registry, source: PluginSource, kind: str, name: Any, factory: Any) -> None:
    try:
        registry.register(kind, name, factory, plugin=source.name)
    except DuplicateComponentError:
        first = registry._components[kind][name].plugin
        registry.conflicts.append(Conflict(kind, name, (first, source.name)))
    except PluginValidationError as err:
        registry.failures.append(PluginFailure(source.name, source.version, source.entry_point, str(err)))


def load_registry(
    environ: Mapping[str, str] | None = None,
    *,
    builtins: bool = True,
    third_party: bool = True,
    plugins: Sequence[tuple[str, Any]] = (),
) -> Registry:
    """A fresh registry: entry-point plugins (filtered by `environ`) plus in-process `plugins`."""
    return build_registry(load_plugins(environ, builtins=builtins, third_party=third_party, extra=plugins))


# ------------------------------------------------------------------------------ the process-wide one
_current: Registry | None = None
_lock = threading.Lock()


def get_registry() -> Registry:
    """The process-wide registry, loaded on first use; each plugin problem is one warning line on stderr."""
    global _current
    with _lock:
        if _current is None:
            _current = load_registry()
            for line in _current.problems():
                # stderr, not logging: jax/grain may configure the root logger's format, and this
                # must stay the one line the CLI promises
                print(f"phijax: warning: {line}", file=sys.stderr)
        return _current


@contextlib.contextmanager
def use_registry(registry: Registry) -> Iterator[Registry]:
    """Make `registry` what `get_registry()` returns inside the block (tests, notebooks)."""
    global _current
    with _lock:
        previous, _current = _current, registry
    try:
        yield registry
    finally:
        with _lock:
            _current = previous


def reset_registry() -> None:
    """Forget the process-wide registry; the next `get_registry()` loads plugins again."""
    global _current
    with _lock:
        _current = None


# ------------------------------------------------------------------------------------ internals
def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        close = difflib.get_close_matches(kind, KINDS, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise PluginValidationError(f"unknown component kind '{kind}' (kinds: {', '.join(KINDS)}){hint}")


def _protocol_problem(kind: str, made: Any) -> str | None:
    """Why `made` cannot be a component of `kind`, or None; only cheap structural checks."""
    if kind == "data_sources":
        random_access = hasattr(made, "__len__") and hasattr(made, "__getitem__")
        if not (random_access or hasattr(made, "__iter__")) or isinstance(made, (str, bytes, Mapping)):
            return (
                f"returned {type(made).__name__}, not a data source: return an object with "
                f"__len__ and __getitem__, or an iterable of record dicts"
            )
    elif kind == "backends":
        if not isinstance(getattr(made, "capabilities", None), (frozenset, set)) or not callable(
            getattr(made, "generate", None)
        ):
            return (
                f"returned {type(made).__name__}, not a policy: it needs `capabilities` (a set) and "
                f"generate(prompts, ...); see phijax.plugins.protocols.TextPolicy"
            )
    elif kind == "metric_loggers":
        if not (callable(getattr(made, "log", None)) and callable(getattr(made, "close", None))):
            return f"returned {type(made).__name__}, not a metric logger: it needs log(step, metrics) and close()"
    elif not callable(made):
        return f"returned {type(made).__name__}, which is not callable; see phijax.plugins.protocols"
    return None

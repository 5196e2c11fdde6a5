"""Testing helpers for plugin authors: register a plugin object in-process, get a fresh registry.

With phijax installed, pytest loads this module itself (a `pytest11` entry point), so a plugin's
tests can use the `phijax_registry` fixture directly::

    import my_plugin

    def test_my_source_is_registered(phijax_registry):
        registry = phijax_registry(my_plugin)
        source = registry.create("data_sources", "my_source", n=3)
        assert len(source) == 3

The fixture's registry holds the built-in plugins plus the objects given, none of the other
installed third-party plugins, and is what `phijax.plugins.registry.get_registry()` returns for the
duration of the test, so core code under test finds the plugin too. The process-wide registry is
left untouched. Outside pytest use `plugin_registry(...)`, a context manager doing the same.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from phijax.plugins.registry import Registry, load_registry, use_registry


def make_registry(*plugins: Any, builtins: bool = True) -> Registry:
    """A new registry of the built-ins (unless `builtins=False`) and `plugins` (modules, classes, objects).

    Each plugin is named after its `__name__` (or its class name). A plugin that does not validate
    (a misspelled hook, a hook without `@hookimpl`) raises `PluginValidationError` here; a hook that
    raises is recorded in `registry.failures`, as at run time.
    """
    named: list[tuple[str, Any]] = []
    for plugin in plugins:
        name = _plugin_name(plugin)
        taken = {n for n, _ in named}
        named.append((name if name not in taken else f"{name}-{len(named)}", plugin))
    return load_registry({}, builtins=builtins, third_party=False, plugins=named)


@contextlib.contextmanager
def plugin_registry(*plugins: Any, builtins: bool = True) -> Iterator[Registry]:
    """`make_registry(...)`, installed as the process-wide registry inside the block."""
    with use_registry(make_registry(*plugins, builtins=builtins)) as registry:
        yield registry


@pytest.fixture
def phijax_registry() -> Iterator[Callable[..., Registry]]:
    """Call as `phijax_registry(plugin, ...)` to get a fresh registry holding the built-ins and them.

    The newest registry made by the call is what `get_registry()` returns until the test ends.
    """
    with contextlib.ExitStack() as stack:

        def make(*plugins: Any, builtins: bool = True) -> Registry:
            return stack.enter_context(plugin_registry(*plugins, builtins=builtins))

        yield make


def _plugin_name(plugin: Any) -> str:
    name = getattr(plugin, "__name__", None) or type(plugin).__name__
    return str(name)

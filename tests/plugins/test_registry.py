"""The registry: names by kind, duplicate and unknown names, errors attributed to the plugin."""

from __future__ import annotations

import re

import pytest

from phijax.errors import PhijaxError
from phijax.plugins import hookimpl
from phijax.plugins.errors import (
    ComponentError,
    DuplicateComponentError,
    PluginValidationError,
    UnknownComponentError,
)
from phijax.plugins.registry import Registry, load_registry


def source_plugin(*names: str):
    class Plugin:
        @hookimpl
        def phijax_register_data_sources(self, register):
            for name in names:
                register(name, lambda **options: [{"text": "x", **options}])

    return Plugin()


def test_a_name_registered_twice_is_an_error_naming_both_plugins(make_dist):
    code = """
        from phijax.plugins import hookimpl

        @hookimpl
        def phijax_register_data_sources(register):
            register("shared_name", list)
    """
    make_dist("first-plugin", code)
    make_dist("second-plugin", code)
    registry = load_registry({})
    [conflict] = registry.conflicts
    assert conflict.plugins == ("first-plugin", "second-plugin")
    with pytest.raises(
        DuplicateComponentError, match="'shared_name' is registered by both first-plugin and second-plugin"
    ):
        registry.get("data_sources", "shared_name")
    assert "jsonl" in registry.names("metric_loggers")  # the rest keeps working


def test_a_third_party_plugin_reusing_a_builtin_name_is_blamed_second():
    registry = load_registry({}, plugins=[("copycat", source_plugin("jsonl", "own_name"))])
    assert [c.plugins for c in registry.conflicts] == [("phijax", "copycat")]
    assert registry.plugin_of("data_sources", "own_name") == "copycat"


def test_register_refuses_a_taken_name_at_once():
    registry = Registry()
    registry.register("verifiers", "exact", lambda: None, plugin="a")
    with pytest.raises(DuplicateComponentError, match="verifier 'exact' is registered by both a and b"):
        registry.register("verifiers", "exact", lambda: None, plugin="b")


def test_an_unknown_name_lists_the_registered_names_and_the_closest_match():
    registry = load_registry({}, builtins=False, plugins=[("p", source_plugin("jsonl", "parquet", "curriculum"))])
    with pytest.raises(UnknownComponentError) as info:
        registry.get("data_sources", "jsnol")
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("unknown data source 'jsnol': did you mean 'jsonl'?")
    assert "registered data sources: curriculum, jsonl, parquet" in message
    assert isinstance(info.value, PhijaxError)


def test_an_unknown_name_mentions_plugins_that_failed_to_load(make_dist):
    make_dist("broken-plugin", "raise ImportError('missing dependency')\n")
    with pytest.raises(UnknownComponentError, match=r"1 plugin\(s\) failed to load \(see `phijax plugins`\)"):
        load_registry({}).get("data_sources", "from_the_broken_plugin")


def test_an_unknown_kind_is_refused_with_the_closest_kind():
    with pytest.raises(PluginValidationError, match="did you mean 'verifiers'"):
        Registry().names("verifier")


@pytest.mark.parametrize("name", ["", "has space", "-dash-first", 3])
def test_bad_component_names_are_refused(name):
    with pytest.raises(PluginValidationError, match="not a valid name"):
        Registry().register("evaluators", name, dict, plugin="p")


def test_create_passes_options_and_returns_the_component():
    registry = load_registry({}, builtins=False, plugins=[("p", source_plugin("echo"))])
    assert list(registry.create("data_sources", "echo", lang="en")) == [{"text": "x", "lang": "en"}]


def test_a_factory_error_is_reported_with_the_plugin_and_component_names():
    def needs_paths(paths):
        raise FileNotFoundError(f"no file matches {paths}")

    registry = Registry()
    registry.register("data_sources", "files", needs_paths, plugin="files-plugin")
    with pytest.raises(ComponentError) as info:
        registry.create("data_sources", "files", paths="x/*.jsonl")
    assert str(info.value) == (
        "data source 'files' (plugin files-plugin) failed: FileNotFoundError: no file matches x/*.jsonl"
    )
    assert isinstance(info.value.__cause__, FileNotFoundError)


def test_a_factory_phijax_error_keeps_its_message_and_gains_the_plugin_name():
    def strict(**options):
        raise PhijaxError("option `count` must be positive; set count: 10")

    registry = Registry()
    registry.register("evaluators", "strict", strict, plugin="strict-plugin")
    with pytest.raises(
        ComponentError,
        match=r"^evaluator 'strict' \(plugin strict-plugin\) failed: option `count` must be positive; set count: 10$",
    ):
        registry.create("evaluators", "strict")


@pytest.mark.parametrize(
    "kind, made, complaint",
    [
        ("data_sources", 42, "not a data source"),
        ("data_sources", "a string", "not a data source"),
        ("metric_loggers", object(), "needs log(step, metrics) and close()"),
        ("verifiers", "yes", "not callable"),
    ],
)
def test_create_refuses_a_component_that_breaks_its_protocol(kind, made, complaint):
    registry = Registry()
    registry.register(kind, "odd", lambda: made, plugin="odd-plugin")
    with pytest.raises(ComponentError, match=rf"\(plugin odd-plugin\) .*{re.escape(complaint)}"):
        registry.create(kind, "odd")


def test_attributed_names_the_plugin_of_a_component_failing_at_run_time():
    registry = Registry()
    registry.register("verifiers", "fragile", lambda: lambda completion, problem: 1 / 0, plugin="fragile-plugin")
    verify = registry.create("verifiers", "fragile")
    with pytest.raises(ComponentError, match=r"verifier 'fragile' \(plugin fragile-plugin\) failed: ZeroDivisionError"):
        with registry.attributed("verifiers", "fragile"):
            verify("42", {"answer": "42"})

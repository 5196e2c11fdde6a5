"""Entry-point discovery: built-ins, fault isolation, hook validation, the two environment variables."""

from __future__ import annotations

import pytest

from phijax.plugins.errors import PluginValidationError
from phijax.plugins.registry import get_registry, load_registry

GOOD = """
    from phijax.plugins import hookimpl

    @hookimpl
    def phijax_register_data_sources(register):
        register("{name}", lambda **options: [{{"text": "hi"}}])
"""


def good(name: str) -> str:
    return GOOD.format(name=name)


def test_builtins_arrive_through_the_phijax_entry_point_group():
    registry = load_registry({})
    builtins = [p for p in registry.plugins if p.builtin]
    assert {p.name for p in builtins} == {"phijax"}
    assert all(p.entry_point and "phijax_plugins." in p.entry_point for p in builtins)
    assert registry.plugin_of("metric_loggers", "jsonl") == "phijax"
    assert registry.problems() == []


def test_a_plugin_that_fails_to_import_is_one_line_and_the_others_load(make_dist):
    make_dist("broken-plugin", "import not_a_module_anywhere\n", version="0.3")
    make_dist("good-plugin", good("good_source"))
    registry = load_registry({})
    assert registry.plugin_of("data_sources", "good_source") == "good-plugin"
    assert registry.plugin_of("metric_loggers", "jsonl") == "phijax"
    [failure] = registry.failures
    line = failure.line()
    assert "\n" not in line
    assert line.startswith("plugin broken-plugin 0.3 (entry point main = fake_plugin_")
    assert "ModuleNotFoundError: No module named 'not_a_module_anywhere'" in line
    assert "Traceback" in failure.traceback  # kept for --debug, never in the line


def test_a_hook_that_raises_is_reported_and_the_rest_of_the_plugin_still_works(make_dist):
    make_dist(
        "flaky-plugin",
        """
        from phijax.plugins import hookimpl

        @hookimpl
        def phijax_register_data_sources(register):
            register("half_done", dict)
            raise RuntimeError("cannot reach the bucket")

        @hookimpl
        def phijax_register_evaluators(register):
            register("still_fine", lambda **o: (lambda policy, *, seed: {}))
    """,
    )
    registry = load_registry({})
    [failure] = registry.failures
    assert failure.plugin == "flaky-plugin"
    assert failure.reason == "hook phijax_register_data_sources raised RuntimeError: cannot reach the bucket"
    assert "half_done" not in registry.names("data_sources")  # a failed hook registers nothing
    assert registry.plugin_of("evaluators", "still_fine") == "flaky-plugin"


def test_a_misspelled_hook_is_an_error_naming_the_plugin(make_dist):
    make_dist(
        "typo-plugin",
        """
        from phijax.plugins import hookimpl

        @hookimpl
        def phijax_register_data_source(register):
            register("never", dict)
    """,
    )
    make_dist("good-plugin", good("good_source"))
    registry = load_registry({})
    [failure] = registry.failures
    assert failure.plugin == "typo-plugin"
    assert "unknown hook phijax_register_data_source; did you mean phijax_register_data_sources?" in failure.reason
    assert registry.names("data_sources").count("good_source") == 1
    assert not [p for p in registry.plugins if p.name == "typo-plugin"]


def test_a_hook_function_without_hookimpl_is_refused_not_silently_ignored():
    class Forgetful:
        def phijax_register_verifiers(self, register):
            register("never", lambda **o: lambda completion, problem: True)

    with pytest.raises(
        PluginValidationError, match=r"Forgetful: phijax_register_verifiers is not decorated.*@hookimpl"
    ):
        load_registry({}, plugins=[("Forgetful", Forgetful())])


def test_a_hook_asking_for_an_unknown_argument_is_an_error_naming_the_plugin(make_dist):
    make_dist(
        "argy-plugin",
        """
        from phijax.plugins import hookimpl

        @hookimpl
        def phijax_register_verifiers(register, config):
            pass
    """,
    )
    [failure] = load_registry({}).failures
    assert failure.plugin == "argy-plugin"
    assert "config" in failure.reason


def test_disable_autoload_keeps_builtins_and_drops_third_party(make_dist):
    make_dist("good-plugin", good("good_source"))
    registry = load_registry({"PHIJAX_DISABLE_PLUGIN_AUTOLOAD": "1"})
    assert "good_source" not in registry.names("data_sources")
    assert "jsonl" in registry.names("metric_loggers")
    assert registry.skipped == ["good-plugin"]
    assert "good_source" in load_registry({"PHIJAX_DISABLE_PLUGIN_AUTOLOAD": "0"}).names("data_sources")


def test_phijax_plugins_loads_only_the_named_distributions(make_dist):
    make_dist("plugin-a", good("from_a"))
    make_dist("plugin-b", good("from_b"))
    registry = load_registry({"PHIJAX_PLUGINS": "Plugin_A"})  # names compare PyPA-normalised
    assert "from_a" in registry.names("data_sources")
    assert "from_b" not in registry.names("data_sources")
    assert "jsonl" in registry.names("metric_loggers")
    assert registry.skipped == ["plugin-b"]


def test_phijax_plugins_opts_in_even_when_autoload_is_disabled(make_dist):
    make_dist("plugin-a", good("from_a"))
    make_dist("plugin-b", good("from_b"))
    env = {"PHIJAX_PLUGINS": "plugin-b", "PHIJAX_DISABLE_PLUGIN_AUTOLOAD": "1"}
    names = load_registry(env).names("data_sources")
    assert "from_b" in names and "from_a" not in names


def test_phijax_plugins_naming_a_missing_distribution_is_reported(make_dist):
    make_dist("plugin-a", good("from_a"))
    [failure] = load_registry({"PHIJAX_PLUGINS": "plugin-aa"}).failures
    assert failure.plugin == "plugin-aa"
    assert "installed plugins: plugin-a" in failure.line()


def test_get_registry_loads_once_and_warns_once_per_problem(make_dist, capsys):
    make_dist("broken-plugin", "raise ValueError('bad plugin')\n")
    first, second = get_registry(), get_registry()
    assert first is second
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("phijax: warning: plugin broken-plugin 1.0 (entry point main = ")
    assert line.endswith("failed: ValueError: bad plugin")

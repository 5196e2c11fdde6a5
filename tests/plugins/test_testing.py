"""`phijax.plugins.testing`: a fresh registry with an in-process plugin, the global one untouched."""

from __future__ import annotations

import pytest

from phijax.plugins import hookimpl
from phijax.plugins.errors import PluginValidationError
from phijax.plugins.registry import get_registry
from phijax.plugins.testing import make_registry, plugin_registry


class Shouting:
    @hookimpl
    def phijax_register_verifiers(self, register):
        register("shouting", lambda **options: lambda completion, problem: completion.isupper())


class Misspelled:
    @hookimpl
    def phijax_register_verifier(self, register):
        register("never", dict)


def test_the_fixture_registers_the_plugin_next_to_the_builtins(phijax_registry):
    registry = phijax_registry(Shouting())
    assert registry.plugin_of("verifiers", "shouting") == "Shouting"
    assert "jsonl" in registry.names("metric_loggers")
    assert get_registry() is registry  # core code under test finds the plugin too


def test_the_fixture_leaves_out_other_installed_plugins(make_dist, phijax_registry):
    make_dist(
        "installed-plugin",
        """
        from phijax.plugins import hookimpl

        @hookimpl
        def phijax_register_verifiers(register):
            register("installed", dict)
    """,
    )
    registry = phijax_registry(Shouting())
    assert "shouting" in registry.names("verifiers")
    assert "installed" not in registry.names("verifiers")
    assert [p.name for p in registry.plugins if not p.builtin] == ["Shouting"]


def test_a_misspelled_hook_fails_loudly_for_the_plugin_author():
    with pytest.raises(
        PluginValidationError,
        match="plugin Misspelled: unknown hook phijax_register_verifier; did you mean phijax_register_verifiers",
    ):
        make_registry(Misspelled())


def test_plugin_registry_restores_the_process_wide_registry_afterwards():
    before = get_registry()
    with plugin_registry(Shouting(), builtins=False) as registry:
        assert get_registry() is registry
        assert registry.names("metric_loggers") == []
    assert get_registry() is before
    assert "shouting" not in before.names("verifiers")


def test_two_instances_of_one_plugin_class_get_distinct_names():
    with pytest.raises(Exception, match="registered by both Shouting and Shouting-1"):
        make_registry(Shouting(), Shouting(), builtins=False).get("verifiers", "shouting")

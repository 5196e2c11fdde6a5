"""`phijax plugins [--json]` and the commands that plugins add to the CLI."""

from __future__ import annotations

import json

from phijax.cli import build_parser, main
from phijax.plugins import hookimpl
from phijax.plugins.registry import load_registry, use_registry

BROKEN = "import not_a_module_anywhere\n"
GOOD = """
    from phijax.plugins import hookimpl

    @hookimpl
    def phijax_register_data_sources(register):
        register("good_source", lambda **options: [])

    @hookimpl
    def phijax_register_verifiers(register):
        register("always", lambda **options: (lambda completion, problem: True))
"""


def test_plugins_json_lists_each_plugin_its_hooks_components_and_failures(make_dist, phijax_cli):
    make_dist("good-plugin", GOOD, version="2.1", entry_point="good")
    make_dist("broken-plugin", BROKEN, version="0.3")
    result = phijax_cli("plugins", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    plugins = {p["name"]: p for p in report["plugins"]}
    assert plugins["phijax"]["source"] == "built-in"
    assert "jsonl" in plugins["phijax"]["components"]["metric_loggers"]
    good = plugins["good-plugin"]
    assert (good["version"], good["source"]) == ("2.1", "third-party")
    assert good["entry_points"] == [f"good = {good['entry_points'][0].split(' = ')[1]}"]
    assert good["hooks"] == ["phijax_register_data_sources", "phijax_register_verifiers"]
    assert good["components"] == {"data_sources": ["good_source"], "verifiers": ["always"]}
    [failed] = report["failed"]
    assert (failed["plugin"], failed["version"]) == ("broken-plugin", "0.3")
    assert failed["reason"] == "ModuleNotFoundError: No module named 'not_a_module_anywhere'"


def test_a_broken_plugin_costs_one_warning_line_and_no_traceback(make_dist, phijax_cli):
    make_dist("broken-plugin", BROKEN, version="0.3")
    result = phijax_cli("plugins")
    assert result.returncode == 0
    assert result.stderr.strip().splitlines() == [
        f"phijax: warning: plugin broken-plugin 0.3 (entry point main = {_module(result.stdout)}) failed: "
        "ModuleNotFoundError: No module named 'not_a_module_anywhere'"
    ]
    assert "failed:\n  plugin broken-plugin 0.3" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


def test_debug_shows_the_traceback_of_a_failed_plugin(make_dist, phijax_cli):
    make_dist("broken-plugin", BROKEN)
    result = phijax_cli("--debug", "plugins")
    assert "Traceback (most recent call last)" in result.stdout
    assert "import not_a_module_anywhere" in result.stdout


def test_disabled_autoload_shows_what_was_skipped(make_dist, phijax_cli):
    make_dist("good-plugin", GOOD)
    result = phijax_cli("plugins", env={"PHIJAX_DISABLE_PLUGIN_AUTOLOAD": "1"})
    assert "good-plugin" not in result.stdout.split("skipped")[0]
    assert "skipped by PHIJAX_PLUGINS / PHIJAX_DISABLE_PLUGIN_AUTOLOAD: good-plugin" in result.stdout


class GreetingPlugin:
    @hookimpl
    def phijax_register_commands(self, register):
        def greet(parser):
            """Print a greeting."""
            parser.add_argument("--who", default="world")

            def run(args):
                print(f"hello {args.who}")
                return 0

            return run

        def train(parser):
            """A plugin may not replace a core command."""
            return lambda args: 99

        def broken(parser):
            """Fails while adding its arguments."""
            raise KeyError("who")

        register("greet", greet)
        register("train", train)
        register("broken", broken)


def test_a_plugin_command_runs_from_the_cli(capsys):
    with use_registry(load_registry({}, plugins=[("greeting", GreetingPlugin())])):
        assert main(["greet", "--who", "phi"]) == 0
    assert capsys.readouterr().out == "hello phi\n"


def test_a_plugin_command_cannot_take_a_core_commands_name():
    registry = load_registry({}, plugins=[("greeting", GreetingPlugin())])
    with use_registry(registry):
        parser = build_parser()
        build_parser()  # building twice records the refusal once
    args = parser.parse_args(["train", "--config", "x.yaml"])
    assert args.func.__name__ == "_cmd_train"
    [failure] = registry.failures
    assert (
        failure.line()
        == "plugin greeting failed: command 'train' is a core phijax command; register it under another name"
    )


def test_a_plugin_command_whose_factory_fails_reports_it_in_one_line(capsys):
    with use_registry(load_registry({}, plugins=[("greeting", GreetingPlugin())])):
        assert main(["broken"]) == 2
    assert capsys.readouterr().err == "phijax: error: command 'broken' (plugin greeting) failed: KeyError: 'who'\n"


def _module(stdout: str) -> str:
    return stdout.split("(entry point main = ")[1].split(")")[0]


class Copycat:
    @hookimpl
    def phijax_register_metric_loggers(self, register):
        register("jsonl", lambda run_dir, **options: None)


def test_plugins_text_lists_conflicts_naming_both_plugins(capsys):
    with use_registry(load_registry({}, plugins=[("copycat", Copycat())])):
        assert main(["plugins"]) == 0
    out = capsys.readouterr().out
    assert out.endswith(
        "conflicts:\n  metric logger 'jsonl' is registered by both phijax and copycat; "
        "uninstall one of them or select plugins with PHIJAX_PLUGINS\n"
    )
    assert "copycat (third-party)\n  hooks: phijax_register_metric_loggers\n" in out

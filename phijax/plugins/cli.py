"""The command-line side of plugins: `phijax plugins [--json]` and the commands plugins add.

`phijax plugins` is the tool for debugging discovery: it shows each plugin (distribution, version,
built-in or third-party), its entry points, the hooks it implements and the components it
registered, then the plugins that failed to load with their one-line reasons (tracebacks with
`phijax --debug plugins`), the names two plugins both registered, and the distributions that the
environment variables left out.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from phijax.plugins.manager import DISABLE_AUTOLOAD_ENV, ONLY_PLUGINS_ENV, PluginFailure
from phijax.plugins.registry import Registry, get_registry


def add_plugins_command(subparsers: Any) -> None:
    """Add `phijax plugins [--json]` to the CLI's subparsers."""
    p = subparsers.add_parser("plugins", help="list installed plugins, their components and failures")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    p.set_defaults(func=run_plugins_command)


def add_plugin_commands(subparsers: Any, registry: Registry | None = None) -> None:
    """Add a subcommand for each component of kind `commands`; core command names are kept.

    A command whose factory fails still appears, and running it reports the failure in one line.
    """
    registry = registry or get_registry()
    for name in registry.names("commands"):
        component = registry.component("commands", name)
        if name in subparsers.choices:
            refused = _refused_command(registry, component.plugin, name)
            if refused not in registry.failures:  # build_parser may run more than once
                registry.failures.append(refused)
            continue
        doc = (component.factory.__doc__ or "").strip()
        parser = subparsers.add_parser(name, help=doc.splitlines()[0] if doc else f"(from {component.plugin})")
        try:
            run = registry.create("commands", name, parser)
        except Exception as err:  # noqa: BLE001 - reported when the command is used
            run = _failed_command(err)
        parser.set_defaults(func=run)


def run_plugins_command(args: argparse.Namespace) -> int:
    """Body of `phijax plugins`."""
    registry = get_registry()
    data = plugins_report(registry)
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        print(format_report(data, registry, tracebacks=getattr(args, "debug", False)))
    return 0


def plugins_report(registry: Registry) -> dict[str, Any]:
    """What `phijax plugins --json` prints: plugins by distribution, failures, conflicts, skipped."""
    plugins: dict[str, dict[str, Any]] = {}
    for source in registry.plugins:
        entry = plugins.setdefault(
            source.name,
            {
                "name": source.name,
                "version": source.version,
                "source": "built-in" if source.builtin else "third-party",
                "entry_points": [],
                "hooks": [],
                "components": registry.components_of(source.name),
            },
        )
        if source.entry_point:
            entry["entry_points"].append(source.entry_point)
        entry["hooks"] = sorted(set(entry["hooks"]) | set(registry.hooks.get(source.key, [])))
    return {
        "plugins": list(plugins.values()),
        "failed": [
            {
                "plugin": f.plugin,
                "version": f.version,
                "entry_point": f.entry_point,
                "reason": f.reason,
                "line": f.line(),
            }
            for f in registry.failures
        ],
        "conflicts": [
            {"kind": c.kind, "name": c.name, "plugins": list(c.plugins), "line": c.line()} for c in registry.conflicts
        ],
        "skipped": list(registry.skipped),
    }


def format_report(data: dict[str, Any], registry: Registry, tracebacks: bool = False) -> str:
    """The text form of `plugins_report`."""
    lines = []
    for plugin in data["plugins"]:
        version = f" {plugin['version']}" if plugin["version"] else ""
        lines.append(f"{plugin['name']}{version} ({plugin['source']})")
        lines += [f"  entry point: {ep}" for ep in plugin["entry_points"]]
        lines.append(f"  hooks: {', '.join(plugin['hooks']) or 'none'}")
        lines += [f"  {kind}: {', '.join(names)}" for kind, names in plugin["components"].items()]
    if not data["plugins"]:
        lines.append("no plugins loaded")
    if data["skipped"]:
        lines.append(f"skipped by {ONLY_PLUGINS_ENV} / {DISABLE_AUTOLOAD_ENV}: {', '.join(data['skipped'])}")
    if data["failed"]:
        lines.append("failed:")
        for failure, record in zip(data["failed"], registry.failures, strict=True):
            lines.append(f"  {failure['line']}")
            if tracebacks and record.traceback:
                lines += [f"    {t}" for t in record.traceback.rstrip().splitlines()]
    if data["conflicts"]:
        lines.append("conflicts:")
        lines += [f"  {c['line']}" for c in data["conflicts"]]
    return "\n".join(lines)


def _refused_command(registry: Registry, plugin: str, name: str) -> PluginFailure:
    source = next((s for s in registry.plugins if s.name == plugin), None)
    return PluginFailure(
        plugin,
        source.version if source else None,
        source.entry_point if source else None,
        f"command '{name}' is a core phijax command; register it under another name",
    )


def _failed_command(err: Exception) -> Any:
    def run(args: argparse.Namespace) -> int:
        raise err

    return run

"""The core reaches plugins only through the registry, loading plugins stays cheap, packaging is right."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _imports(path: Path) -> list[str]:
    """Modules a file imports, including `importlib.import_module("...")` / `__import__("...")` calls."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.append(node.module)
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            name = getattr(node.func, "attr", getattr(node.func, "id", ""))
            if name in ("import_module", "__import__") and isinstance(node.args[0].value, str):
                found.append(node.args[0].value)
    return found


def test_the_core_never_imports_builtin_plugin_modules():
    offenders = [
        f"{path.relative_to(REPO)} imports {name}"
        for path in sorted((REPO / "phijax").rglob("*.py"))
        for name in _imports(path)
        if name == "phijax_plugins" or name.startswith("phijax_plugins.") or name == "plugins"
    ]
    assert offenders == [], "use phijax.plugins.registry.get_registry() instead: " + "; ".join(offenders)


def test_the_import_scan_would_catch_a_direct_import(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text(
        "import importlib\nfrom phijax_plugins import data_sources\n"
        "importlib.import_module('phijax_plugins.metric_loggers')\n"
    )
    assert _imports(probe) == ["importlib", "phijax_plugins", "phijax_plugins.metric_loggers"]


def test_loading_every_plugin_imports_no_jax_and_stays_fast():
    code = (
        "import sys, time\nt = time.perf_counter()\n"
        "from phijax.plugins.registry import get_registry\nr = get_registry()\n"
        "print(round(time.perf_counter() - t, 3), "
        "sorted(m for m in ('jax', 'flax', 'grain', 'optax') if m in sys.modules), len(r.plugins))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split(" ", 1)
    seconds, rest = float(out[0]), out[1]
    assert rest.startswith("[]"), f"loading plugins imported {rest}"
    assert seconds < 2.0


def test_a_normal_install_has_phijax_plugins_and_not_the_template(tmp_path):
    src = tmp_path / "src"
    for name in ("phijax", "plugins", "pyproject.toml", "setup.py", "README.md"):
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        elif (REPO / name).exists():
            shutil.copy(REPO / name, src / name)
    (src / "README.md").touch()
    site = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--disable-pip-version-check",
            "--target",
            str(site),
            str(src),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    assert (site / "phijax_plugins" / "metric_loggers.py").is_file()
    assert not (site / "plugins").exists() and not (site / "phijax_plugins" / "template").exists()
    assert not list(site.glob("phijax_template*"))
    for package in (REPO / "phijax").rglob("__init__.py"):  # every core subpackage made it in
        assert (site / package.relative_to(REPO)).is_file(), package
    [entry_points] = site.glob("phijax-*.dist-info/entry_points.txt")
    assert "builtin_metric_loggers = phijax_plugins.metric_loggers" in entry_points.read_text()

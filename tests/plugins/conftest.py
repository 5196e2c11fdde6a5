"""Fixtures for plugin tests: fake installed distributions with `phijax` entry points."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from phijax.plugins.registry import reset_registry

_serial = itertools.count()


@pytest.fixture
def site_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A directory on sys.path (and PYTHONPATH, for subprocesses) where fake distributions live."""
    root = tmp_path / "site"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))
    monkeypatch.setenv("PYTHONPATH", str(root))
    return root


@pytest.fixture
def make_dist(site_dir: Path) -> Callable[..., str]:
    """`make_dist(dist_name, code, version="1.0", entry_point="main")` installs a one-module plugin.

    `code` is the module's source (dedented); the module gets a unique name so tests never share a
    cached import. Returns that module name.
    """

    def make(dist: str, code: str, version: str = "1.0", entry_point: str = "main") -> str:
        module = f"fake_plugin_{next(_serial)}_{dist.replace('-', '_')}"
        (site_dir / f"{module}.py").write_text(textwrap.dedent(code))
        info = site_dir / f"{dist.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
        (info / "entry_points.txt").write_text(f"[phijax]\n{entry_point} = {module}\n")
        return module

    return make


@pytest.fixture(autouse=True)
def fresh_process_registry(monkeypatch: pytest.MonkeyPatch):
    """Each test starts and ends without a cached process-wide registry or plugin env vars."""
    monkeypatch.delenv("PHIJAX_PLUGINS", raising=False)
    monkeypatch.delenv("PHIJAX_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    reset_registry()
    yield
    reset_registry()


def run_phijax(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """`python -m phijax.cli ARGS` in a subprocess (it sees PYTHONPATH as set by the test)."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "phijax.cli", *args], capture_output=True, text=True, env=full_env, timeout=120
    )


@pytest.fixture
def phijax_cli() -> Callable[..., subprocess.CompletedProcess]:
    """Run the `phijax` CLI in a subprocess: `phijax_cli("plugins", "--json", env={...})`."""
    return run_phijax

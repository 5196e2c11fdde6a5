"""Test session set-up: an 8-device CPU mesh, before jax is imported anywhere; mounts for fault tests."""

import os

os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8").strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import subprocess  # noqa: E402
import types  # noqa: E402
from contextlib import contextmanager  # noqa: E402

import pytest  # noqa: E402


@contextmanager
def _tmpfs(where, size: str, read_only: bool = False):
    """A `size` tmpfs mounted at `where` (made here) for the block; the test skips where none can be
    mounted. Tests run as root, which ignores permission bits but not a read-only or full file system."""
    where.mkdir()
    options = f"ro,size={size}" if read_only else f"size={size}"
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], capture_output=True)
    if done.returncode:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.decode().strip()[:80]})")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)])


@contextmanager
def _read_only_view(source, view):
    """`source` seen read-only at `view` (made here) through a bind mount, for the block; skips where
    that cannot be done."""
    view.mkdir()
    if subprocess.run(["mount", "--bind", str(source), str(view)], capture_output=True).returncode:
        pytest.skip("cannot bind-mount a directory here")
    try:
        if subprocess.run(["mount", "-o", "remount,bind,ro", str(view)], capture_output=True).returncode:
            pytest.skip("cannot make a bind mount read-only here")
        yield view
    finally:
        subprocess.run(["umount", "-l", str(view)])


@pytest.fixture(scope="session")
def mounts():
    """`mounts.tmpfs(where, size, read_only=False)` and `mounts.read_only_view(source, view)`: context
    managers for the fault tests (full disk, read-only directories), usable from fixtures of any scope."""
    return types.SimpleNamespace(tmpfs=_tmpfs, read_only_view=_read_only_view)

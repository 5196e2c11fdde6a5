"""tools/plan.py and tools/aot_compile.py: CI-sized runs and the missing-libtpu message."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

TOOLS = Path(__file__).resolve().parents[2] / "tools"


def run_tool(name, *args):
    return subprocess.run(
        [sys.executable, str(TOOLS / name), *args], capture_output=True, text=True, timeout=300, check=False
    )


def test_plan_prints_per_device_parts_and_whether_they_fit():
    done = run_tool(
        "plan.py", "--preset", "phi4-14b", "--devices", "8", "--batch", "8", "--seq-len", "4096", "--hbm-gib", "80"
    )
    assert done.returncode == 0, done.stderr[-2000:]
    for part in ("parameters (fp32)", "optimizer (2 Adam moments)", "gradients", "activations", "fits in 80 GiB"):
        assert part in done.stdout
    assert "6.83 GiB" in done.stdout  # 4 bytes x 14.66B parameters / 8 devices


def test_plan_says_when_it_does_not_fit():
    done = run_tool("plan.py", "--preset", "phi4-14b", "--devices", "1", "--batch", "1", "--hbm-gib", "80")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "DOES NOT FIT" in done.stdout


@pytest.mark.skipif(importlib.util.find_spec("libtpu") is not None, reason="libtpu is installed here")
def test_aot_compile_without_libtpu_names_the_install_command():
    done = run_tool("aot_compile.py", "--topology", "v5p:2x2x2")
    assert done.returncode == 1
    assert 'pip install "jax[tpu]==' in done.stderr.strip().splitlines()[-1]

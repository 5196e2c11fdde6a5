"""Runs shared by the scale-out tests: `phijax train` as one process x 8 CPU devices and as two
processes x 4 (jax.distributed over gloo on localhost), both driven through the CLI.

The runs are made once per session: the two-process run with `mesh.dcn_data=2` is compared with the
one-process run (test_multislice.py), and both are the checkpoints that test_resume_host_count.py
resumes on the other process count.
"""

import json
import os
import shutil
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "configs" / "tiny" / "pretrain.yaml"
STEPS = 4
MESH = {"mesh.data": 2, "mesh.fsdp": -1, "mesh.tensor": 1}
# Losses of two processes against one: reductions run in another order (tests/train/test_multiprocess.py).
RELATIVE_TOLERANCE = 2e-3


@dataclass
class Run:
    """A finished `phijax train` run: its directory, logged losses and each process's stderr."""

    run_dir: Path
    losses: dict[int, float]
    stderr: list[str]


def overrides(run_dir: Path, **extra) -> list[str]:
    """Small settings on top of configs/tiny/pretrain.yaml: 4 steps, checkpoints at 2 and 4."""
    values = {
        "run_dir": str(run_dir),
        "train.steps": STEPS,
        "train.seq_len": 64,
        "train.global_batch": 8,
        "train.log_every": 1,
        "checkpoint.every": 2,
        "checkpoint.keep": 3,
        "optim.warmup_steps": 2,
        **MESH,
        **extra,
    }
    return [f"{k}={v}" for k, v in values.items()]


def logged_losses(run_dir: Path) -> dict[int, float]:
    """step → loss from metrics.jsonl, keeping the last line of a step logged twice."""
    losses = {}
    for line in (run_dir / "metrics.jsonl").read_text().splitlines():
        record = json.loads(line)
        losses[record["step"]] = record["loss"]
    return losses


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def train(run_dir: Path, processes: int, **extra) -> Run:
    """`phijax train` as `processes` processes sharing 8 CPU devices; asserts every one exits 0."""
    devices = 8 // processes
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "phijax.cli",
        "train",
        "--config",
        str(TINY),
        *overrides(run_dir, **{"mesh.cpu_devices": devices, **extra}),
    ]
    procs = []
    for index in range(processes):
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}"}
        if processes > 1:
            env.update(
                PHIJAX_COORDINATOR_ADDRESS=f"127.0.0.1:{port}",
                PHIJAX_NUM_PROCESSES=str(processes),
                PHIJAX_PROCESS_ID=str(index),
            )
        procs.append(subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    stderr = [proc.communicate(timeout=300)[1] for proc in procs]
    for proc, err in zip(procs, stderr):
        assert proc.returncode == 0, err[-3000:]
    return Run(run_dir, logged_losses(run_dir), stderr)


def cut_after_step(source: Path, target: Path, step: int) -> Path:
    """A copy of run `source` as if it had been killed right after saving checkpoint `step`:
    later checkpoints and metrics lines are gone."""
    shutil.copytree(source, target)
    for path in (target / "checkpoints").iterdir():
        if path.name.isdigit() and int(path.name) > step:
            shutil.rmtree(path)
    metrics = target / "metrics.jsonl"
    kept = [line for line in metrics.read_text().splitlines() if json.loads(line)["step"] <= step]
    metrics.write_text("".join(line + "\n" for line in kept))
    return target


@pytest.fixture(scope="session")
def one_process_run(tmp_path_factory) -> Run:
    """One process x 8 devices, mesh data=2 fsdp=4 (one level)."""
    return train(tmp_path_factory.mktemp("scale") / "one_process", 1)


@pytest.fixture(scope="session")
def two_slice_run(tmp_path_factory) -> Run:
    """Two processes x 4 devices, mesh data=2 fsdp=4 with `mesh.dcn_data=2`: a process is a granule."""
    return train(tmp_path_factory.mktemp("scale") / "two_processes", 2, **{"mesh.dcn_data": 2})

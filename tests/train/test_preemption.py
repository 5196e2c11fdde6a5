"""Killed and preempted runs: SIGKILL mid-run then the same command resumes; SIGTERM saves and exits 0."""

import json
import os
import signal
import subprocess
import time
from pathlib import Path

from phijax.train.config import load_train_job
from phijax.train.trainer import train

from .conftest import TINY, logged_losses, overrides, train_command

STEPS = 40
EXTRA = {"checkpoint.every": 4}


def wait_for_step(run_dir: Path, step: int, proc: subprocess.Popen, timeout: float = 240) -> int:
    """Poll metrics.jsonl until `step` is logged; returns the newest logged step."""
    metrics = run_dir / "metrics.jsonl"
    deadline = time.time() + timeout
    while time.time() < deadline:
        if metrics.exists():
            lines = metrics.read_text().splitlines()
            if lines and json.loads(lines[-1])["step"] >= step:
                return json.loads(lines[-1])["step"]
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        time.sleep(0.005)
    raise AssertionError(f"step {step} not logged within {timeout}s")


def test_sigkill_then_same_command_logs_exactly_the_uninterrupted_losses(tmp_path, child_env):
    straight = train(load_train_job([TINY], overrides(tmp_path / "straight", STEPS, **EXTRA))).losses
    run_dir = tmp_path / "killed"
    command = train_command(run_dir, STEPS, **EXTRA)
    proc = subprocess.Popen(
        command, env=child_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True
    )
    wait_for_step(run_dir, 10, proc)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = max(logged_losses(run_dir))
    assert killed_at < STEPS
    again = subprocess.run(command, env=child_env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "resumed from step" in again.stderr
    resumed = logged_losses(run_dir)
    assert sorted(resumed) == list(range(1, STEPS + 1))
    for step in range(1, STEPS + 1):
        assert abs(resumed[step] - straight[step]) <= 1e-6 * abs(straight[step]), step


def test_sigterm_saves_a_checkpoint_and_exits_zero(tmp_path, child_env):
    run_dir = tmp_path / "run"
    proc = subprocess.Popen(
        train_command(run_dir, STEPS, **{"checkpoint.every": 1000}),
        env=child_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_for_step(run_dir, 3, proc)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr[-2000:]
    last = max(logged_losses(run_dir))
    assert last < STEPS and "SIGTERM" in stderr
    saved = sorted(int(p.name) for p in (run_dir / "checkpoints").iterdir() if p.name.isdigit())
    assert saved == [last]

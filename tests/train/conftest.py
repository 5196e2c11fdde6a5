"""Shared set-up for training tests: a small tiny-model config and a way to run `phijax train`."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "configs" / "tiny" / "pretrain.yaml"


def overrides(run_dir, steps=6, **extra):
    """Small, fast settings on top of configs/tiny/pretrain.yaml."""
    values = {
        "run_dir": str(run_dir),
        "train.steps": steps,
        "train.seq_len": 64,
        "train.global_batch": 8,
        "train.log_every": 1,
        "checkpoint.every": 2,
        "optim.warmup_steps": 2,
        **extra,
    }
    return [f"{k}={v}" for k, v in values.items()]


def logged_losses(run_dir):
    """step → loss from metrics.jsonl, keeping the last line of a step logged twice."""
    losses = {}
    for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines():
        record = json.loads(line)
        losses[record["step"]] = record["loss"]
    return losses


def train_command(run_dir, steps=6, **extra):
    return [sys.executable, "-m", "phijax.cli", "train", "--config", str(TINY), *overrides(run_dir, steps, **extra)]


@pytest.fixture
def child_env():
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def run_train(run_dir, steps=6, env=None, **extra):
    return subprocess.run(train_command(run_dir, steps, **extra), capture_output=True, text=True, env=env, timeout=300)

"""Killing `phijax recipe` at a stage boundary and in the middle of a stage, then re-running it, ends
with the very parameters of an uninterrupted run (two short train stages: pretrain → sft)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from phijax.recipe.run import DONE

from .conftest import REPO, write_recipe

SHORT = [
    "optim.warmup_steps=1",
    "train.log_every=1",
    "train.seq_len=128",
    "checkpoint.every=2",
    "checkpoint.async_save=false",
]
STAGES = [
    {
        "name": "pre",
        "command": "train",
        "config": ["configs/tiny/pretrain.yaml"],
        "overrides": [*SHORT, "train.steps=4"],
    },
    {"name": "sft", "command": "train", "config": ["configs/tiny/sft.yaml"], "overrides": [*SHORT, "train.steps=4"]},
]


def start(recipe: Path) -> subprocess.Popen:
    """`phijax recipe` in its own process group (so a kill reaches the stage it runs, like a lost node)."""
    return subprocess.Popen(
        [sys.executable, "-m", "phijax.cli", "recipe", "--config", str(recipe), "plot=false"],
        cwd=REPO,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def kill_when(proc: subprocess.Popen, ready, timeout: float = 170) -> None:
    """SIGKILL the recipe's process group as soon as `ready()` holds."""
    deadline = time.monotonic() + timeout
    while not ready():
        assert proc.poll() is None, f"the recipe ended before the kill point: {proc.stderr.read().decode()[-2000:]}"
        assert time.monotonic() < deadline, "kill point not reached in time"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def logged_steps(run_dir: Path) -> int:
    path = run_dir / "metrics.jsonl"
    lines = path.read_text().splitlines() if path.is_file() else []
    return max((json.loads(line)["step"] for line in lines if line.strip().endswith("}")), default=0)


def params(step_dir: Path) -> dict[str, np.ndarray]:
    """A checkpoint step's parameters as host arrays, by path."""
    import jax
    import orbax.checkpoint as ocp

    checkpointer = ocp.PyTreeCheckpointer()
    meta = checkpointer.metadata(step_dir / "params")
    tree = getattr(meta, "item_metadata", meta)
    tree = getattr(tree, "tree", tree)
    args = jax.tree_util.tree_map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray), tree)
    restored = checkpointer.restore(step_dir / "params", restore_args=args)
    return {jax.tree_util.keystr(k): np.asarray(v) for k, v in jax.tree_util.tree_leaves_with_path(restored)}


@pytest.mark.slow
def test_killed_at_a_boundary_and_mid_stage_then_rerun_matches_the_uninterrupted_run(tmp_path):
    straight = write_recipe(tmp_path / "straight.yaml", tmp_path / "straight", STAGES)
    assert start(straight).wait() == 0

    killed_root = tmp_path / "killed"
    killed = write_recipe(tmp_path / "killed.yaml", killed_root, STAGES)
    kill_when(start(killed), lambda: (killed_root / "pre" / DONE).exists())  # between the two stages
    assert not (killed_root / "sft" / DONE).exists()
    kill_when(start(killed), lambda: logged_steps(killed_root / "sft") >= 3)  # sft saved step 2, runs step 4
    assert not (killed_root / "sft" / DONE).exists() and (killed_root / "sft" / "checkpoints" / "2").is_dir()
    rerun = start(killed)
    _, err = rerun.communicate(timeout=170)
    assert rerun.returncode == 0, err.decode()[-2000:]
    assert "stage pre: done, skipped" in err.decode() and "stage sft: resuming" in err.decode()

    expected, got = (
        params(tmp_path / "straight" / "sft" / "checkpoints" / "4"),
        params(killed_root / "sft" / "checkpoints" / "4"),
    )
    assert expected.keys() == got.keys() and len(expected) > 0
    for name in expected:
        np.testing.assert_array_equal(got[name], expected[name], err_msg=name)
    losses = [json.loads(line)["loss"] for line in (killed_root / "sft" / "metrics.jsonl").read_text().splitlines()]
    assert losses[-1] == json.loads((tmp_path / "straight/sft/metrics.jsonl").read_text().splitlines()[-1])["loss"]

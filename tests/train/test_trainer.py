"""The one trainer on the 8-device CPU mesh: learning, mesh equivalence, checkpoints, resume and hooks."""

import json
import shutil

import pytest

from phijax.errors import CheckpointError, ConfigError
from phijax.train.config import load_train_job
from phijax.train.trainer import train

from .conftest import TINY, logged_losses, overrides, run_train


def run(run_dir, steps=6, **extra):
    return train(load_train_job([TINY], overrides(run_dir, steps, **extra)))


def test_tiny_run_learns_and_writes_the_run_directory(tmp_path):
    result = run(tmp_path / "run", steps=30, **{"optim.warmup_steps": 5, "train.log_every": 5})
    losses = [result.losses[s] for s in sorted(result.losses)]
    assert losses[-1] < 0.6 * losses[0]
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == [
        "checkpoints",
        "config.yaml",
        "configs",
        "metrics.jsonl",
    ]
    logged = logged_losses(tmp_path / "run")
    assert sorted(logged) == [5, 10, 15, 20, 25, 30] and logged[30] == result.losses[30]
    record = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[-1])
    assert {"step", "loss", "lr", "grad_norm", "tokens_per_s", "mfu"} <= set(record)
    assert record["tokens_per_s"] > 0 and 0 < record["mfu"] < 1


@pytest.mark.parametrize("mesh", [(2, 2, 2), (1, 8, 1), (8, 1, 1)])
def test_sharded_losses_equal_single_device_losses(tmp_path, mesh, single_device_losses):
    data, fsdp, tensor = mesh
    got = run(tmp_path / "run", steps=4, **{"mesh.data": data, "mesh.fsdp": fsdp, "mesh.tensor": tensor}).losses
    for step, loss in single_device_losses.items():
        assert abs(got[step] - loss) <= 2e-3 * abs(loss), (step, got[step], loss)


@pytest.fixture(scope="module")
def single_device_losses(tmp_path_factory):
    return run(
        tmp_path_factory.mktemp("single") / "run", steps=4, **{"mesh.data": 1, "mesh.fsdp": 1, "mesh.tensor": 1}
    ).losses


def test_grad_accumulation_matches_one_big_batch(tmp_path, single_device_losses):
    got = run(tmp_path / "run", steps=4, **{"train.grad_accum": 4}).losses
    for step, loss in single_device_losses.items():
        assert abs(got[step] - loss) <= 2e-3 * abs(loss)


def test_corrupt_latest_checkpoint_falls_back_to_the_previous_one(tmp_path, caplog):
    straight = run(tmp_path / "straight", steps=8).losses
    first = run(tmp_path / "resumed", steps=8)
    assert first.step == 8 and sorted(int(p.name) for p in (tmp_path / "resumed" / "checkpoints").iterdir()) == [6, 8]
    # Damage the newest step: it must be skipped with a warning, and step 6 used instead.
    for item in (tmp_path / "resumed" / "checkpoints" / "8" / "params").iterdir():
        if item.is_dir():
            shutil.rmtree(item)
    second = run(tmp_path / "resumed", steps=8)
    assert second.resumed_from == 6
    assert "step 8" in caplog.text and "cannot be restored" in caplog.text
    assert second.losses[7] == straight[7] and second.losses[8] == straight[8]


def test_a_run_dir_of_another_model_is_refused(tmp_path):
    run(tmp_path / "run", steps=2)
    with pytest.raises(CheckpointError, match="different model config"):
        run(tmp_path / "run", steps=4, **{"model.num_layers": 3})


def test_init_from_a_run_starts_midtraining_from_its_params(tmp_path):
    pre = run(tmp_path / "pre", steps=4)
    mid = run(
        tmp_path / "mid",
        steps=2,
        **{
            "train.stage": "midtrain",
            "checkpoint.init_from": str(tmp_path / "pre"),
            "model.rope_theta": 250000,
            "train.seq_len": 128,
            "optim.peak_lr": 3.0e-4,
        },
    )
    fresh = run(tmp_path / "fresh", steps=2, **{"train.seq_len": 128, "model.rope_theta": 250000})
    assert mid.losses[1] < fresh.losses[1] and pre.step == 4


def test_midtraining_without_init_from_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="checkpoint.init_from"):
        run(tmp_path / "run", steps=2, **{"train.stage": "midtrain"})


def test_hooks_run_every_n_steps_and_their_metrics_are_logged(tmp_path):
    from phijax.train.hooks import Hook

    calls = []

    def count(context):
        calls.append((context.step, sorted(context.params)[:1]))
        return {"hook/calls": len(calls)}

    run_dir = tmp_path / "run"
    train(load_train_job([TINY], overrides(run_dir, steps=5)), hooks=[Hook(every=2, action=count)])
    assert [step for step, _ in calls] == [2, 4] and calls[0][1] == ["embed"]
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [(r["step"], r["hook/calls"]) for r in records if "hook/calls" in r] == [(2, 1), (4, 2)]


def test_the_readme_job_prints_no_resharding_warning_and_each_log_line_once(tmp_path):
    """`phijax train --config configs/tiny/pretrain.yaml` on its data 2 x fsdp 4 mesh, run then resumed."""
    run_dir = tmp_path / "run"
    first = run_train(run_dir, steps=2, **{"optim.warmup_steps": 1, "checkpoint.every": 1})
    again = run_train(run_dir, steps=3, **{"optim.warmup_steps": 1, "checkpoint.every": 1, "optim.extend": "constant"})
    for done in (first, again):
        assert done.returncode == 0, done.stderr[-2000:]
        assert "Involuntary full rematerialization" not in done.stderr
    resumed = [line for line in again.stderr.splitlines() if "resumed from step 2" in line]
    assert len(resumed) == 1 and resumed[0].startswith("phijax: "), resumed  # not again as INFO:phijax.train:...

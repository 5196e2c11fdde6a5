"""Issue 13: faults an operator meets — divergence, two runs on one dir, signals at a checkpoint step or
during a save, a full or read-only disk, a finished run in a read-only directory, data sources changed on
resume, an extended schedule, config history, damaged inputs, repeated bad-record warnings, and values
refused at load time."""

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from phijax.cli import main
from phijax.errors import CheckpointError, ConfigError
from phijax.train.config import load_train_job
from phijax.train.hooks import Hook
from phijax.train.trainer import TrainingDiverged, train

from .conftest import REPO, TINY, overrides, train_command


def run(run_dir, steps=4, hooks=(), **extra):
    return train(load_train_job([TINY], overrides(run_dir, steps, **extra)), hooks=hooks)


def saved_steps(run_dir):
    return sorted(int(p.name) for p in (Path(run_dir) / "checkpoints").iterdir() if p.name.isdigit())


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished 4-step run (checkpoints at 2 and 4); tests copy it before changing it."""
    run_dir = tmp_path_factory.mktemp("finished") / "run"
    run(run_dir, 4, **{"optim.end_lr_ratio": 0.1})
    return run_dir


def copy_of(finished, tmp_path):
    return Path(shutil.copytree(finished, tmp_path / "run"))


# ---------------------------------------------------------------------------------- 1. divergence
def params_finite(step_dir):
    from phijax.model.checkpoint import load_model_dir

    model = load_model_dir(step_dir)
    from flax import nnx

    return all(np.isfinite(np.asarray(x)).all() for x in __import__("jax").tree.leaves(nnx.state(model, nnx.Param)))


def test_a_non_finite_loss_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path):
    extra = {"optim.peak_lr": 1e30, "optim.warmup_steps": 0, "checkpoint.every": 1, "checkpoint.keep": 2}
    with pytest.raises(TrainingDiverged, match="diverged at step 2.*train.max_bad_steps"):
        run(tmp_path / "run", 8, **extra)
    assert saved_steps(tmp_path / "run") == [1]
    assert params_finite(tmp_path / "run" / "checkpoints" / "1")


def test_max_bad_steps_skips_bad_updates_then_stops(tmp_path, caplog):
    extra = {"optim.peak_lr": 1e30, "optim.warmup_steps": 0, "checkpoint.every": 1, "train.max_bad_steps": 2}
    with pytest.raises(TrainingDiverged, match="diverged at step 4.*3 non-finite"):
        run(tmp_path / "run", 8, **extra)
    assert caplog.text.count("update skipped") == 2
    assert all(params_finite(tmp_path / "run" / "checkpoints" / str(s)) for s in saved_steps(tmp_path / "run"))


def test_the_cli_exits_non_zero_with_one_line_on_divergence(tmp_path, capsys):
    args = overrides(tmp_path / "run", 4, **{"optim.peak_lr": 1e30, "optim.warmup_steps": 0})
    assert main(["train", "--config", str(TINY), *args]) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert len(lines) == 1 and "diverged" in lines[0]


# ---------------------------------------------------------------------------------- 2. the lock
def test_a_second_training_on_a_locked_run_dir_is_refused_in_one_line(tmp_path, capsys):
    run_dir = tmp_path / "run"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"from phijax.train.lock import RunLock; RunLock({str(run_dir)!r}).acquire(); "
            "import time; print('held', flush=True); time.sleep(120)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        assert main(["train", "--config", str(TINY), *overrides(run_dir, 2)]) == 2
        err = capsys.readouterr().err
        assert f"pid {holder.pid}" in err and "in use by another training" in err
        assert not (run_dir / "config.yaml").exists() and not (run_dir / "metrics.jsonl").exists()
    finally:
        holder.kill()
        holder.wait()
    run(run_dir, 2)  # the holder is gone: its lock is stale and is taken over
    assert saved_steps(run_dir) == [2] and not (run_dir / ".lock").exists()


def test_stale_locks_by_pid_on_this_host_and_by_heartbeat_on_another():
    import socket

    from phijax.train.lock import is_stale, owner_record

    me = owner_record()
    assert not is_stale(me, time.time())
    assert is_stale({**me, "pid": 2**22 + 12345}, time.time())  # no such pid
    assert is_stale({**me, "start": "0"}, time.time())  # pid reused by another process
    other = {"host": socket.gethostname() + "-other", "pid": 1}
    assert not is_stale(other, time.time() - 10) and is_stale(other, time.time() - 3600)


# ------------------------------------------------------------------------- 3. signals and resume
def signal_at(step, number):
    return Hook(every=1, action=lambda c: os.kill(os.getpid(), number) if c.step == step else None, name="signal")


@pytest.mark.parametrize("at, steps", [(3, 6), (5, 6)])  # the signal lands before step 4 (a checkpoint step), 6 (last)
def test_sigterm_at_a_checkpoint_step_or_the_last_saves_once_and_exits_cleanly(tmp_path, at, steps):
    result = run(tmp_path / "run", steps, hooks=[signal_at(at, signal.SIGTERM)])
    assert result.preempted and result.signal == "SIGTERM" and result.step == at + 1
    assert saved_steps(tmp_path / "run")[-1] == at + 1


def test_ctrl_c_saves_the_step_like_sigterm(tmp_path):
    result = run(tmp_path / "run", 6, hooks=[signal_at(2, signal.SIGINT)], **{"checkpoint.every": 100})
    assert result.signal == "SIGINT" and saved_steps(tmp_path / "run") == [3]
    again = run(tmp_path / "run", 6, **{"checkpoint.every": 100})
    assert again.resumed_from == 3


def test_a_checkpoints_dir_with_only_an_unfinished_save_is_named(tmp_path, caplog):
    (tmp_path / "run" / "checkpoints" / "4.orbax-checkpoint-tmp").mkdir(parents=True)
    result = run(tmp_path / "run", 2)
    assert result.resumed_from is None
    assert "only unfinished save(s) (4.orbax-checkpoint-tmp)" in caplog.text and "starting from step 0" in caplog.text
    assert "removed 1 unfinished save(s)" in caplog.text and saved_steps(tmp_path / "run") == [2]
    assert not (tmp_path / "run" / "checkpoints" / "4.orbax-checkpoint-tmp").exists()


def ctrl_c_while_saving(monkeypatch, presses: int) -> list[str]:
    """Press Ctrl-C `presses` times (1 s apart) while the first asynchronous save is being committed; the
    commit (orbax renaming the step's temporary directory) waits until then, so every press lands in a
    save in progress. Returns the temporary directory's name once it was pressed."""
    from orbax.checkpoint._src.checkpointers import async_checkpointer

    commit, pressed = async_checkpointer._on_commit_callback, []

    def slow_commit(tmpdir, *args, **kwargs):
        if not pressed:
            pressed.append(tmpdir.get().name)
            for _ in range(presses):  # to the main thread, as a terminal does: its waits are interrupted
                signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)
                time.sleep(1.0)
        commit(tmpdir, *args, **kwargs)

    monkeypatch.setattr(async_checkpointer, "_on_commit_callback", slow_commit)
    return pressed


@pytest.mark.parametrize("presses", [1, pytest.param(2, marks=pytest.mark.slow)])
def test_ctrl_c_during_a_save_lets_it_finish_exits_130_and_the_next_start_resumes_there(
    tmp_path, monkeypatch, capsys, caplog, presses
):
    run_dir = tmp_path / "run"
    pressed = ctrl_c_while_saving(monkeypatch, presses)
    assert main(["train", "--config", str(TINY), *overrides(run_dir, 2)]) == 130
    err = capsys.readouterr().err
    assert pressed == ["2.orbax-checkpoint-tmp"] and "SIGINT: saving at the end of this step" in err
    assert ("phijax: interrupted" in err) == (presses == 2)  # the second press aborts at once
    assert [p.name for p in (run_dir / "checkpoints").iterdir()] == ["2"]  # complete, no temporary dir left
    assert run(run_dir, 2).resumed_from == 2 and f"resumed from step 2 of {run_dir / 'checkpoints'}" in caplog.text


# ------------------------------------------------------------------------------- 4. a full disk
@pytest.fixture
def small_disk(tmp_path, mounts):
    """A 12 MiB tmpfs: room for one tiny checkpoint (about 8 MiB), not two."""
    with mounts.tmpfs(tmp_path / "small", "12m") as where:
        yield where


def test_a_full_disk_stops_with_one_line_and_removes_the_partial_save(small_disk, child_env):
    run_dir = small_disk / "run"
    done = subprocess.run(train_command(run_dir, 6), capture_output=True, text=True, env=child_env, timeout=300)
    assert done.returncode == 2, done.stderr[-3000:]
    errors = [line for line in done.stderr.splitlines() if line.startswith(("phijax: error", "Traceback"))]
    assert len(errors) == 1 and "no space left on device saving step 4" in errors[0], done.stderr[-3000:]
    assert str(run_dir / "checkpoints") in errors[0] and "MiB" in errors[0]
    assert sum("RuntimeError" in line or "orbax" in line for line in done.stderr.splitlines()) == 0
    assert [p.name for p in (run_dir / "checkpoints").iterdir()] == ["2"]


def test_a_read_only_run_dir_is_one_line(tmp_path, capsys, mounts):
    with mounts.tmpfs(tmp_path / "ro", "1m", read_only=True) as where:
        assert main(["train", "--config", str(TINY), *overrides(where / "run", 2)]) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and "cannot write" in err and "Read-only file system" in err


# ------------------------------------------------------ 4b. a finished run in a read-only directory
@pytest.fixture(scope="module")
def read_only_finished(finished, tmp_path_factory, mounts):
    """`finished` seen through a read-only bind mount (tests run as root, which ignores permission bits
    but not a read-only mount): every command that only inspects the run must work on it."""
    with mounts.read_only_view(finished, tmp_path_factory.mktemp("read_only") / "run") as view:
        with pytest.raises(OSError, match="Read-only file system"):
            (view / "probe").touch()
        yield view


def test_generate_samples_a_finished_run_in_a_read_only_dir(read_only_finished, capsys):
    args = ["--checkpoint", str(read_only_finished), "--prompt", "1 + 1 =", "--max-new-tokens", "2"]
    assert main(["generate", *args, "--temperature", "0"]) == 0
    assert f"loaded {read_only_finished / 'checkpoints' / '4'}" in capsys.readouterr().err


def test_convert_to_hf_exports_a_finished_run_in_a_read_only_dir(read_only_finished, tmp_path):
    assert main(["convert", "to-hf", str(read_only_finished), str(tmp_path / "hf")]) == 0
    assert (tmp_path / "hf" / "model.safetensors").is_file() and (tmp_path / "hf" / "tokenizer.json").is_file()


def test_eval_scores_a_finished_run_in_a_read_only_dir(read_only_finished, tmp_path):
    benchmark = REPO / "configs" / "tiny" / "benchmarks" / "arithmetic_mc.jsonl"
    args = [
        f"policy.checkpoint={read_only_finished}",
        f"output_dir={tmp_path / 'eval'}",
        f"evaluators=[{{name: multiple_choice, file: {benchmark}, shots: 0, limit: 2}}]",
    ]
    assert main(["eval", "--config", str(REPO / "configs" / "tiny" / "eval.yaml"), *args]) == 0
    assert (tmp_path / "eval" / "results.json").is_file()


def test_plot_draws_a_finished_run_in_a_read_only_dir(read_only_finished, tmp_path):
    assert main(["plot", str(read_only_finished), "--out", str(tmp_path / "curves.png")]) == 0
    assert (tmp_path / "curves.png").stat().st_size > 0


def test_training_a_finished_read_only_run_says_it_is_complete_and_more_steps_is_one_line(read_only_finished, capsys):
    assert main(["train", "--config", str(TINY), *overrides(read_only_finished, 4)]) == 0
    assert "run already complete at step 4" in capsys.readouterr().err
    assert main(["train", "--config", str(TINY), *overrides(read_only_finished, 6)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"cannot write {read_only_finished / '.lock'}: Read-only file system" in err


# ----------------------------------------------------------------- 5. data sources changed on resume
TWO_SOURCES = (
    "[{name: curriculum, source: curriculum, weight: 1.0, seed: 0},"
    " {name: extra, source: curriculum, weight: 1.0, seed: 1}]"
)


def test_resuming_with_another_data_mixture_restores_the_model_and_matches_sources_by_name(finished, tmp_path, caplog):
    run_dir = copy_of(finished, tmp_path)
    result = run(run_dir, 6, **{"data.sources": TWO_SOURCES, "optim.extend": "constant", "optim.end_lr_ratio": 0.1})
    assert result.resumed_from == 4 and result.step == 6
    assert "data source `extra` is new since the checkpoint" in caplog.text
    back = run(run_dir, 8, **{"optim.extend": "constant", "optim.end_lr_ratio": 0.1})  # and drop it again
    assert back.resumed_from == 6 and "`extra` is no longer in data.sources" in caplog.text


# ----------------------------------------------------------------------- 6. extending a schedule
def test_extending_a_finished_run_is_refused_without_optim_extend(finished, tmp_path):
    run_dir = copy_of(finished, tmp_path)
    before = (run_dir / "config.yaml").read_text()
    with pytest.raises(ConfigError, match="optim.extend=constant"):
        run(run_dir, 8, **{"optim.end_lr_ratio": 0.1})
    assert (run_dir / "config.yaml").read_text() == before


def test_optim_extend_constant_holds_the_final_lr(finished, tmp_path):
    run_dir = copy_of(finished, tmp_path)
    run(run_dir, 6, **{"optim.end_lr_ratio": 0.1, "optim.extend": "constant"})
    lrs = {r["step"]: r["lr"] for r in map(json.loads, (run_dir / "metrics.jsonl").read_text().splitlines())}
    assert lrs[5] == lrs[6] and lrs[5] <= lrs[4] * 1.0001 and lrs[5] == pytest.approx(3e-4, rel=1e-4)


# ------------------------------------------------------------------------ 7. the config history
def test_a_failed_attempt_leaves_config_yaml_and_attempts_are_kept(finished, tmp_path, capsys):
    run_dir = copy_of(finished, tmp_path)
    before = (run_dir / "config.yaml").read_text()
    args = overrides(run_dir, 9, **{"train.metric_loggers": "[jsnol]", "optim.peak_lr": 1.0})
    assert main(["train", "--config", str(TINY), *args]) == 2
    assert "jsonl" in capsys.readouterr().err and (run_dir / "config.yaml").read_text() == before
    run(run_dir, 6, **{"optim.end_lr_ratio": 0.1, "optim.extend": "constant"})
    attempts = sorted(p.name for p in (run_dir / "configs").iterdir())
    assert attempts == ["attempt-1.yaml", "attempt-2.yaml"]
    assert "steps: 4" in (run_dir / "configs" / "attempt-1.yaml").read_text()
    assert "steps: 6" in (run_dir / "config.yaml").read_text()


# ------------------------------------------------------------------------------ 8. damaged inputs
def test_a_truncated_safetensors_file_is_one_line_naming_it(tmp_path):
    from phijax.model.hf import iter_hf_tensors

    header = json.dumps({"w": {"dtype": "F32", "shape": [4, 4], "data_offsets": [0, 64]}}).encode()
    file = tmp_path / "model.safetensors"
    file.write_bytes(len(header).to_bytes(8, "little") + header + b"\0" * 20)  # cut short: 20 of 64 bytes
    with pytest.raises(CheckpointError, match="model.safetensors is corrupt or truncated"):
        list(iter_hf_tensors(tmp_path))


def test_generate_falls_back_to_the_previous_intact_step(finished, tmp_path, caplog):
    from phijax.inference.policy import load_policy

    run_dir = copy_of(finished, tmp_path)
    for item in (run_dir / "checkpoints" / "4" / "params").iterdir():
        if item.is_dir():
            shutil.rmtree(item)
    policy = load_policy(run_dir)
    assert policy.source.step == 2 and "step 4" in caplog.text and "using step 2" in caplog.text


def test_a_corrupt_dpo_reference_cache_is_recomputed(tmp_path, caplog):
    from phijax.train.objectives.preference import REFERENCE_FILE, cached_reference

    from .objectives.conftest import dpo_config

    cfg = dpo_config(tmp_path, "pairs.jsonl")
    (tmp_path / REFERENCE_FILE).write_bytes(b"PK\x03\x04 truncated")
    assert cached_reference(cfg, 4) is None and "corrupt or truncated" in caplog.text


# ------------------------------------------------------------------------ 9. bad records, once
def test_each_bad_record_is_reported_once_however_often_it_is_re_read(tmp_path, caplog):
    from phijax.data import mixture
    from phijax.data.stats import data_stats

    mixture._REPORTED.clear()
    lines = [json.dumps({"text": f"document {i} " * 5}) for i in range(4)] + ["{broken", '{"no_text": 1}']
    (tmp_path / "d.jsonl").write_text("\n".join(lines) + "\n")
    source = f"[{{name: docs, source: jsonl, weight: 1.0, paths: {tmp_path / 'd.jsonl'}}}]"
    cfg = load_train_job([TINY], overrides(tmp_path / "run", 3, **{"data.sources": source, "data.strict": "false"}))
    data_stats(cfg, 3)
    warnings = [r for r in caplog.records if "skipping bad record" in r.getMessage()]
    assert len(warnings) == 2 and mixture.distinct_bad_records() == {"docs": 2}


# --------------------------------------------------------------------- values refused at load
@pytest.mark.parametrize(
    "override, words",
    [
        ("checkpoint.keep=0", "checkpoint.keep is 0"),
        ("optim.peak_lr=-1e-3", "optim.peak_lr is -0.001"),
        ("optim.peak_lr=.nan", "optim.peak_lr is nan"),
        ("optim.warmup_steps=-1", "optim.warmup_steps is -1"),
        ("train.log_every=0", "train.log_every is 0"),
        ("checkpoint.every=0", "checkpoint.every is 0"),
        ("train.grad_accum=0", "train.grad_accum is 0"),
        ("train.global_batch=0", "train.global_batch is 0"),
        ("train.seq_len=0", "train.seq_len is 0"),
        ("train.global_batch=6", "does not split over the 8 devices"),
        ("optim.warmup_steps=100", "optim.warmup_ratio=0.1"),
        ("optim.warmup_ratio=1.5", "optim.warmup_ratio is 1.5"),
        ("train.metric_loggers=[jsnol]", "train.metric_loggers"),
    ],
)
def test_values_refused_at_load_time_in_one_line_with_nothing_written(tmp_path, capsys, override, words):
    run_dir = tmp_path / "run"
    assert main(["train", "--config", str(TINY), *overrides(run_dir, 6), override]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and words in err, err
    assert not run_dir.exists()


def test_warmup_ratio_sets_the_warmup_from_the_run_length():
    cfg = load_train_job([TINY], ["train.steps=50", "optim.warmup_ratio=0.1"])
    from phijax.train.optim import learning_rate_schedule

    lr = learning_rate_schedule(cfg.optim, 50)
    assert float(lr(5)) == pytest.approx(cfg.optim.peak_lr) and float(lr(2)) < cfg.optim.peak_lr
    assert math.isclose(cfg.optim.warmup_for(50), 5)

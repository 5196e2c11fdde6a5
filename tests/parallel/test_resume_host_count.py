"""Resuming on a different number of processes: the global batches, and so the losses, go on as
if the run had never stopped; per-process data states that cannot be mapped are one clear line."""

import json

import numpy as np
import pytest
from etils import epath

from phijax.data.pipeline import build_batches, regroup_row_states
from phijax.data.records import DataError
from phijax.errors import CheckpointError
from phijax.parallel.distributed import ProcessStateHandler
from phijax.train.config import load_train_job

from .conftest import RELATIVE_TOLERANCE, STEPS, TINY, cut_after_step, overrides, train


def advanced(cfg, index: int, count: int, batches: int):
    """Process `index` of `count`'s iterator after `batches` batches."""
    iterator = build_batches(cfg, index, count)
    for _ in range(batches):
        next(iterator)
    return iterator


def test_two_processes_data_state_resumes_as_one_and_back(tmp_path):
    cfg = load_train_job([TINY], overrides(tmp_path))
    halves = [advanced(cfg, index, 2, 3) for index in range(2)]
    whole = advanced(cfg, 0, 1, 0)
    whole.set_state_from_processes([h.get_state() for h in reversed(halves)])  # any order
    expected = [next(h) for h in halves]
    got = next(whole)
    for key in got:
        np.testing.assert_array_equal(got[key], np.concatenate([e[key] for e in expected]), key)
    # 1 -> 2: each process takes its rows of the one process's state.
    single = advanced(cfg, 0, 1, 2)
    halves = [advanced(cfg, index, 2, 0) for index in range(2)]
    for h in halves:
        h.set_state_from_processes([single.get_state()])
    got = [next(h) for h in halves]
    expected = next(single)
    np.testing.assert_array_equal(np.concatenate([g["input_ids"] for g in got]), expected["input_ids"])


def test_states_that_cannot_be_mapped_name_the_fix(tmp_path):
    cfg = load_train_job([TINY], overrides(tmp_path))
    state = advanced(cfg, 0, 2, 1).get_state()  # rows 0..3 of 8
    with pytest.raises(DataError, match=r"lack rows 4\.\.7 .*resume with the process count that saved it"):
        regroup_row_states([state], 0, 8, 8)
    with pytest.raises(DataError, match="saved with train.global_batch 8, this run has 16: resume with "):
        regroup_row_states([state], 0, 16, 16)


def test_handler_restores_a_same_count_save_as_grain_does(tmp_path):
    cfg = load_train_job([TINY], overrides(tmp_path))
    saved = advanced(cfg, 0, 1, 2)
    ProcessStateHandler().save(epath.Path(tmp_path), item=saved)
    assert [p.name for p in tmp_path.glob("process_*")] == ["process_0-of-1.json"]
    fresh = ProcessStateHandler().restore(epath.Path(tmp_path), item=advanced(cfg, 0, 1, 0))
    np.testing.assert_array_equal(next(fresh)["input_ids"], next(saved)["input_ids"])


class NotRegroupable:
    def set_state(self, state):
        raise AssertionError("must not be called")


def test_handler_refuses_an_iterator_it_cannot_regroup_and_an_incomplete_save(tmp_path):
    (tmp_path / "process_0-of-2.json").write_text(json.dumps({"rows": []}))
    (tmp_path / "process_1-of-2.json").write_text(json.dumps({"rows": []}))
    directory = epath.Path(tmp_path)
    with pytest.raises(
        CheckpointError,
        match="saved by 2 processes and NotRegroupable cannot be regrouped for 1: resume with 2 processes",
    ):
        ProcessStateHandler().restore(directory, item=NotRegroupable())
    (tmp_path / "process_1-of-2.json").unlink()
    with pytest.raises(CheckpointError, match=r"incomplete set of per-process data states \(process_0-of-2.json\)"):
        ProcessStateHandler().restore(directory, item=NotRegroupable())


def assert_resumed_with_losses_of(resumed, reference, step: int) -> None:
    assert all("resumed from step 2" in err for err in resumed.stderr), resumed.stderr[0][-2000:]
    assert any("regrouped" in err for err in resumed.stderr)
    assert sorted(resumed.losses) == list(range(1, STEPS + 1))
    for s in range(step + 1, STEPS + 1):
        assert abs(resumed.losses[s] - reference.losses[s]) <= RELATIVE_TOLERANCE * abs(reference.losses[s]), s


def test_two_process_run_killed_after_a_checkpoint_resumes_as_one_process(tmp_path, two_slice_run):
    run_dir = cut_after_step(two_slice_run.run_dir, tmp_path / "run", 2)
    resumed = train(run_dir, 1)  # mesh.dcn_data back to 1: one process is one granule
    assert_resumed_with_losses_of(resumed, two_slice_run, 2)
    # The new checkpoint is the one process's: it resumes on one process as before.
    assert [p.name for p in (run_dir / "checkpoints" / "4" / "data").glob("process_*")] == ["process_0-of-1.json"]


def test_one_process_run_killed_after_a_checkpoint_resumes_as_two_processes(tmp_path, one_process_run):
    run_dir = cut_after_step(one_process_run.run_dir, tmp_path / "run", 2)
    resumed = train(run_dir, 2, **{"mesh.dcn_data": 2})
    assert_resumed_with_losses_of(resumed, one_process_run, 2)

"""Built-in metric loggers, reached through the registry as the training loop reaches them."""

from __future__ import annotations

import json
import struct
import sys

import numpy as np
import pytest

from phijax.plugins.errors import ComponentError
from phijax.plugins.registry import load_registry


@pytest.fixture(scope="module")
def registry():
    return load_registry({}, third_party=False)


def test_jsonl_writes_one_object_per_step_and_appends_on_resume(registry, tmp_path):
    logger = registry.create("metric_loggers", "jsonl", tmp_path)
    logger.log(1, {"loss": np.float32(2.5), "lr": 3e-4, "tokens_per_s": np.int64(1000)})
    logger.close()
    resumed = registry.create("metric_loggers", "jsonl", tmp_path)
    resumed.log(2, {"loss": float("nan")})
    resumed.close()
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert json.loads(lines[0]) == {"step": 1, "loss": 2.5, "lr": 3e-4, "tokens_per_s": 1000}
    assert json.loads(lines[1]) == {"step": 2, "loss": None}


def test_jsonl_is_strict_json_lines_with_non_finite_values_as_null(registry, tmp_path):
    """Issue 13: NaN/inf were written as bare NaN/Infinity, which strict JSON readers reject."""
    logger = registry.create("metric_loggers", "jsonl", tmp_path)
    logger.log(1, {"loss": float("nan"), "grad_norm": float("inf"), "lr": np.float32("-inf")})
    logger.close()

    def strict(constant):
        raise ValueError(f"non-standard JSON constant {constant}")

    line = (tmp_path / "metrics.jsonl").read_text()
    assert json.loads(line, parse_constant=strict) == {"step": 1, "loss": None, "grad_norm": None, "lr": None}


def test_jsonl_resumed_run_replaces_the_steps_it_redoes(registry, tmp_path):
    """Issue 13: after a resume from step 2, steps 3-4 logged before the crash appeared twice."""
    first = registry.create("metric_loggers", "jsonl", tmp_path)
    for step in (1, 2, 3, 4):
        first.log(step, {"loss": 10.0 - step})
    first.close()
    resumed = registry.create("metric_loggers", "jsonl", tmp_path)
    for step in (3, 4, 5):
        resumed.log(step, {"loss": 100.0 + step})
    resumed.close()
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5]
    assert [r["loss"] for r in rows] == [9.0, 8.0, 103.0, 104.0, 105.0]


def test_wandb_logs_offline_into_the_run_dir_and_resumes_the_same_run(registry, tmp_path, monkeypatch):
    wandb = pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_SILENT", "true")
    logger = registry.create("metric_loggers", "wandb", tmp_path)
    logger.log(1, {"loss": 2.0, "note": "text is skipped"})
    logger.close()
    run_id = (tmp_path / "wandb_run_id").read_text().strip()
    resumed = registry.create("metric_loggers", "wandb", tmp_path)
    resumed.log(2, {"loss": 1.5})
    resumed.close()
    assert (tmp_path / "wandb_run_id").read_text().strip() == run_id
    runs = sorted((tmp_path / "wandb").glob(f"offline-run-*-{run_id}"))
    assert len(runs) == 2 and all((r / f"run-{run_id}.wandb").is_file() for r in runs)
    assert wandb.run is None


def test_wandb_refuses_an_unknown_mode_in_one_line(registry, tmp_path):
    pytest.importorskip("wandb")
    with pytest.raises(ComponentError, match="offline, online, disabled") as err:
        registry.create("metric_loggers", "wandb", tmp_path, mode="ofline")
    assert len(str(err.value).splitlines()) == 1


def test_jsonl_lines_are_on_disk_before_close(registry, tmp_path):
    logger = registry.create("metric_loggers", "jsonl", tmp_path, filename="m.jsonl")
    logger.log(7, {"loss": 1.0})
    assert json.loads((tmp_path / "m.jsonl").read_text()) == {"step": 7, "loss": 1.0}
    logger.close()


def _scalars(logdir):
    """(tag, step, value) of every scalar in the TFRecord event files under `logdir`."""
    from tensorboardX.proto import event_pb2

    found = []
    for path in sorted(logdir.glob("events.out.tfevents.*")):
        data = path.read_bytes()
        offset = 0
        while offset < len(data):  # record: u64 length, u32 crc, payload, u32 crc
            (length,) = struct.unpack_from("<Q", data, offset)
            event = event_pb2.Event.FromString(data[offset + 12 : offset + 12 + length])
            offset += 12 + length + 4
            found += [(v.tag, event.step, v.simple_value) for v in event.summary.value]
    return found


def test_tensorboard_writes_scalars_to_event_files(registry, tmp_path):
    pytest.importorskip("tensorboardX")
    logger = registry.create("metric_loggers", "tensorboard", tmp_path)
    logger.log(3, {"loss": 2.0, "note": "not a number"})
    logger.log(4, {"loss": np.float32(1.5)})
    logger.close()
    assert _scalars(tmp_path / "tensorboard") == [("loss", 3, 2.0), ("loss", 4, 1.5)]


def test_tensorboard_without_tensorboardx_names_the_extra_to_install(registry, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboardX", None)  # makes `import tensorboardX` fail
    with pytest.raises(ComponentError, match=r"\(plugin phijax\) failed: .*pip install 'phijax\[tensorboard\]'"):
        registry.create("metric_loggers", "tensorboard", tmp_path)

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
    assert json.loads(lines[1])["step"] == 2 and np.isnan(json.loads(lines[1])["loss"])


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
            event = event_pb2.Event.FromString(data[offset + 12: offset + 12 + length])
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

"""Built-in metric loggers: `jsonl` (the run directory's metrics.jsonl) and `tensorboard`.

Both are built as `factory(run_dir, **options)` and used through `log(step, metrics)` / `close()`
(`phijax.plugins.protocols.MetricLogger`). Heavy imports happen in the factory, not at load time.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

from phijax.errors import PhijaxError
from phijax.plugins import hookimpl


class JsonlLogger:
    """Appends one JSON object per logged step, `{"step": 12, "loss": 2.3, ...}`, to `run_dir/filename`.

    The file is opened for appending, so a resumed run continues it; a step logged twice (a crash
    between a log and the next checkpoint) appears twice, and readers keep the last line per step.
    Each line is flushed as it is written: `tail -f` works and a crash loses nothing logged.
    Non-finite floats are written as NaN / Infinity (Python's json reads them back).
    """

    def __init__(self, run_dir: str | Path, filename: str = "metrics.jsonl") -> None:
        self.path = Path(run_dir) / filename
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open("a", encoding="utf-8")

    def log(self, step: int, metrics: Mapping[str, Any]) -> None:
        record = {"step": int(step), **{str(k): _plain(v) for k, v in metrics.items()}}
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()


class TensorBoardLogger:
    """Writes each metric as a TensorBoard scalar to the event files in `run_dir/logdir`.

    Uses tensorboardX (`pip install 'phijax[tensorboard]'`); no TensorFlow needed. View with
    `tensorboard --logdir RUN_DIR/tensorboard`. Values that are not numbers are skipped.
    """

    def __init__(self, run_dir: str | Path, logdir: str = "tensorboard", flush_secs: int = 10) -> None:
        try:
            from tensorboardX import SummaryWriter
        except ImportError:
            raise PhijaxError(
                "the tensorboard metric logger needs tensorboardX: pip install 'phijax[tensorboard]'"
            ) from None
        self.logdir = Path(run_dir) / logdir
        self._writer = SummaryWriter(logdir=str(self.logdir), flush_secs=flush_secs)

    def log(self, step: int, metrics: Mapping[str, Any]) -> None:
        for key, value in metrics.items():
            value = _plain(value)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                self._writer.add_scalar(str(key), float(value), global_step=int(step))

    def close(self) -> None:
        self._writer.close()


def _plain(value: Any) -> Any:
    """numpy / jax scalars to Python numbers; anything JSON cannot hold to its string."""
    if hasattr(value, "item") and getattr(value, "size", 1) == 1:
        value = value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


@hookimpl
def phijax_register_metric_loggers(register):
    register("jsonl", JsonlLogger)
    register("tensorboard", TensorBoardLogger)

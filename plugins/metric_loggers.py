"""Built-in metric loggers: `jsonl` (the run directory's metrics.jsonl), `tensorboard` and `wandb`.

Each is built as `factory(run_dir, **options)` and used through `log(step, metrics)` / `close()`
(`phijax.plugins.protocols.MetricLogger`). Heavy imports happen in the factory, not at load time.
"""

from __future__ import annotations

import json
import math
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from phijax.errors import PhijaxError
from phijax.plugins import hookimpl


class JsonlLogger:
    """Appends one JSON object per logged step, `{"step": 12, "loss": 2.3, ...}`, to `run_dir/filename`.

    Valid JSON Lines: non-finite floats are written as `null`. A resumed run continues the file; the
    first step it logs drops the lines of that step and later ones (steps re-done after a crash
    between a log and the next checkpoint), so every step appears once and curves do not zig-zag.
    Each line is flushed as it is written: `tail -f` works and a crash loses nothing logged.
    """

    def __init__(self, run_dir: str | Path, filename: str = "metrics.jsonl") -> None:
        self.path = Path(run_dir) / filename
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._logged_before = _last_step(self.path)
        self._file = self.path.open("a", encoding="utf-8")

    def log(self, step: int, metrics: Mapping[str, Any]) -> None:
        if self._logged_before is not None and step <= self._logged_before:
            self._file.close()
            _drop_steps_from(self.path, step)
            self._file = self.path.open("a", encoding="utf-8")
        self._logged_before = None
        record = {"step": int(step), **{str(k): _finite_or_none(_plain(v)) for k, v in metrics.items()}}
        self._file.write(json.dumps(record, allow_nan=False) + "\n")
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


class WandbLogger:
    """Sends metrics to Weights & Biases (`pip install 'phijax[wandb]'`), offline by default.

    Offline runs write under `run_dir/wandb` (`wandb sync` uploads them later). The run id is kept in
    `run_dir/wandb_run_id`, so a resumed training continues the same W&B run. Options: `project`,
    `entity`, `name`, `mode` (`offline`, `online`, `disabled`). Credentials come from wandb's own
    environment (`WANDB_API_KEY`); phijax never writes them. Only process 0 builds loggers.
    """

    def __init__(
        self,
        run_dir: str | Path,
        project: str = "phijax",
        entity: str | None = None,
        name: str | None = None,
        mode: str = "offline",
    ) -> None:
        try:
            import wandb
        except ImportError:
            raise PhijaxError("the wandb metric logger needs wandb: pip install 'phijax[wandb]'") from None
        if mode not in ("offline", "online", "disabled"):
            raise PhijaxError(f"wandb logger mode {mode!r} is not one of offline, online, disabled")
        run_dir = Path(run_dir)
        id_file = run_dir / "wandb_run_id"
        run_id = id_file.read_text().strip() if id_file.is_file() else secrets.token_hex(4)
        run_dir.mkdir(parents=True, exist_ok=True)
        id_file.write_text(run_id + "\n")
        self._run = wandb.init(
            project=project,
            entity=entity,
            name=name or run_dir.name,
            id=run_id,
            resume="allow",
            dir=str(run_dir),
            mode=mode,
        )

    def log(self, step: int, metrics: Mapping[str, Any]) -> None:
        values = {str(k): _plain(v) for k, v in metrics.items()}
        self._run.log({k: v for k, v in values.items() if isinstance(v, (int, float))}, step=int(step))

    def close(self) -> None:
        self._run.finish()


def _last_step(path: Path) -> int | None:
    """The largest `step` already in a metrics file (None for a new or empty file)."""
    if not path.is_file():
        return None
    steps = [json.loads(line).get("step", -1) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return max(steps, default=None)


def _drop_steps_from(path: Path, step: int) -> None:
    """Rewrite `path` without the lines of `step` and later (atomically: a temp file, then a rename)."""
    kept = [
        line
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.strip() and json.loads(line).get("step", -1) < step
    ]
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text("".join(line + "\n" for line in kept), encoding="utf-8")
    tmp.replace(path)


def _finite_or_none(value: Any) -> Any:
    return None if isinstance(value, float) and not math.isfinite(value) else value


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
    register("wandb", WandbLogger)

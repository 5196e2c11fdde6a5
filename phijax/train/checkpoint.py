"""Training checkpoints: orbax `CheckpointManager` over `run_dir/checkpoints/<step>/`.

Each step holds `params` (the model directory layout, so `init_from` and `convert to-hf` accept a
step directory), `opt_state`, `data` (grain's iterator state, one file per process) and `meta`
(step, seed, the LR schedule's layout). Orbax writes a step into a temporary directory and renames it
when complete, so a half-written step is never listed. A listed step that fails to restore (corrupted
files) is skipped with a warning and the previous one is used; a data iterator state that does not
fit the config (`phijax.data.pipeline.DataStateMismatch`) is not damage and is reported as it is.

A save that fails for want of space (ENOSPC, on this or on an asynchronous save finishing later) ends
in one `CheckpointError` naming the directory and the space a checkpoint needs; the partial step is
removed first, so the disk is not left full and the newest complete step stays the resume point.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from pathlib import Path
from typing import Any

import orbax.checkpoint as ocp

from phijax.data.records import DataError
from phijax.errors import CheckpointError
from phijax.parallel.distributed import ProcessStateRestore, ProcessStateSave
from phijax.train.config import CheckpointConfig
from phijax.train.state import StateLayout, TrainState

log = logging.getLogger(__name__)
TMP_MARK = ".orbax-checkpoint-tmp"  # orbax's suffix of a step being written


class Checkpoints:
    """Save and restore train state + data-iterator state of one run directory.

    state_bytes: the size of one saved state (params + optimizer), for the message of a full disk.
    read_only: only list and restore steps (orbax then never writes, e.g. in a read-only run directory).
    """

    def __init__(self, run_dir: str | Path, cfg: CheckpointConfig, state_bytes: int = 0, read_only: bool = False):
        self.directory = Path(run_dir).absolute() / "checkpoints"
        self.state_bytes = state_bytes
        self.pending: int | None = None  # step of an asynchronous save not yet known to be complete
        options = ocp.CheckpointManagerOptions(
            max_to_keep=cfg.keep,
            enable_async_checkpointing=cfg.async_save,
            create=False,
            read_only=read_only,
        )
        self.manager = ocp.CheckpointManager(
            self.directory,
            options=options,
            item_names=("params", "opt_state", "data", "meta"),
        )

    def steps(self) -> list[int]:
        """Complete checkpoint steps, oldest first."""
        return sorted(self.manager.all_steps())

    def unfinished(self) -> list[Path]:
        """Directories of saves that never completed (orbax's temporary step directories)."""
        if not self.directory.is_dir():
            return []
        return sorted(p for p in self.directory.iterdir() if TMP_MARK in p.name)

    def save(self, step: int, state: TrainState, data_iterator: Any, meta: dict[str, Any], force: bool = False) -> bool:
        """Start saving `step` (asynchronously when configured); the data state is captured now.

        A step already saved is not saved again (a preemption at a checkpoint step, or at the last).
        """
        if step in self.manager.all_steps() or step == self.pending:
            return False
        self.directory.mkdir(parents=True, exist_ok=True)
        args = ocp.args.Composite(
            params=ocp.args.StandardSave(state["params"]),
            opt_state=ocp.args.StandardSave(state["opt_state"]),
            data=ProcessStateSave(data_iterator),  # grain's files; restorable on another process count
            meta=ocp.args.JsonSave({"step": step, **meta}),
        )
        self._wait_pending()
        with self._guard(step):
            saved = self.manager.save(step, args=args, force=force)
        self.pending = step if saved else None
        return saved

    def _wait_pending(self) -> None:
        """Surface the error of the previous asynchronous save (if any) before starting another."""
        if self.pending is not None:
            step, self.pending = self.pending, None
            with self._guard(step):
                self.manager.wait_until_finished()
                self.manager.check_for_errors()

    def poll(self) -> None:
        """Raise now (no waiting) when the pending asynchronous save has failed: training stops at once."""
        if self.pending is not None and not self.manager.is_saving_in_progress():
            self._wait_pending()

    def _guard(self, step: int) -> _SaveGuard:
        return _SaveGuard(self, step)

    def restore_latest(self, layout: StateLayout, data_iterator: Any) -> tuple[int, TrainState, dict] | None:
        """(step, state, meta) of the newest checkpoint that restores; None when there is none."""
        abstract = layout.sharded_abstract()
        for step in reversed(self.steps()):
            args = ocp.args.Composite(
                params=ocp.args.StandardRestore(abstract["params"]),
                opt_state=ocp.args.StandardRestore(abstract["opt_state"]),
                data=ProcessStateRestore(data_iterator),  # also resumes on another process count
                meta=ocp.args.JsonRestore(),
            )
            try:
                restored = self.manager.restore(step, args=args)
            except DataError:
                raise  # the data config differs from the saved state: not damage, say what differs
            except Exception as err:  # orbax raises many types for damaged files
                reason = str(err).splitlines()[0][:200] if str(err) else type(err).__name__
                log.warning(
                    "checkpoint step %d in %s cannot be restored (%s); trying the previous one",
                    step,
                    self.directory,
                    reason,
                )
                continue
            return step, {"params": restored["params"], "opt_state": restored["opt_state"]}, restored["meta"]
        return None

    def newest_meta(self) -> dict[str, Any] | None:
        """The `meta` item of the newest complete step that has a readable one (read before start-up)."""
        for step in reversed(self.steps()):
            for file in (self.directory / str(step) / "meta").glob("*"):
                try:
                    meta = json.loads(file.read_text())
                except (OSError, ValueError):
                    continue
                if isinstance(meta, dict) and "step" in meta:
                    return meta
        return None

    def wait(self) -> None:
        """Block until pending asynchronous saves are committed."""
        self._wait_pending()

    def close(self) -> None:
        try:
            self._wait_pending()
        finally:
            self.manager.close()


class _SaveGuard:
    """Turns a failed save of `step` for want of space into one CheckpointError, after cleaning up."""

    def __init__(self, checkpoints: Checkpoints, step: int):
        self.checkpoints, self.step = checkpoints, step

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: Any, err: BaseException | None, tb: Any) -> bool:
        if err is None or not isinstance(err, Exception):
            return False
        if is_no_space(err):
            named = re.search(r"checkpoints/(\d+)", str(err))  # the step that failed (maybe an earlier, async one)
            raise no_space_error(self.checkpoints, int(named[1]) if named else self.step) from None
        if isinstance(err, OSError) and err.errno in (13, 30):  # EACCES, EROFS
            raise CheckpointError(f"cannot write checkpoints to {self.checkpoints.directory}: {err.strerror}") from None
        return False


def is_no_space(err: BaseException) -> bool:
    """Whether `err` (or what caused it, or one of a group) is a full disk (ENOSPC, errno 28)."""
    seen: set[int] = set()
    todo = [err]
    while todo:
        e = todo.pop()
        if id(e) in seen:
            continue
        seen.add(id(e))
        if (isinstance(e, OSError) and e.errno == 28) or "No space left on device" in str(e):
            return True
        todo += [x for x in (e.__cause__, e.__context__) if x is not None]
        todo += list(getattr(e, "exceptions", ()))
    return False


def remove_partial(checkpoints: Checkpoints, step: int) -> None:
    """Delete what a failed save of `step` left: orbax's temporary directories and an unlisted step dir."""
    for path in checkpoints.unfinished():
        shutil.rmtree(path, ignore_errors=True)
    step_dir = checkpoints.directory / str(step)
    if step_dir.exists() and step not in checkpoints.manager.all_steps():
        shutil.rmtree(step_dir, ignore_errors=True)


def no_space_error(checkpoints: Checkpoints, step: int) -> CheckpointError:
    """The one line for a full disk, after removing the partial save."""
    remove_partial(checkpoints, step)
    free = shutil.disk_usage(checkpoints.directory).free if checkpoints.directory.exists() else 0
    kept = checkpoints.steps()
    last = f"the last complete checkpoint is step {kept[-1]}" if kept else "no checkpoint is complete"
    return CheckpointError(
        f"no space left on device saving step {step} to {checkpoints.directory}: a checkpoint needs about "
        f"{_mb(checkpoints.state_bytes)} and {_mb(free)} is free; the partial save was removed and {last}: "
        "free space (or lower checkpoint.keep) and rerun to resume"
    )


def _mb(count: int) -> str:
    return f"{count / 2**20:,.1f} MiB"

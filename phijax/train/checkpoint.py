"""Training checkpoints: orbax `CheckpointManager` over `run_dir/checkpoints/<step>/`.

Each step holds `params` (the model directory layout, so `init_from` and `convert to-hf` accept a
step directory), `opt_state`, `data` (grain's iterator state, one file per process) and `meta`
(step, seed). Orbax writes a step into a temporary directory and renames it when complete, so a
half-written step is never listed. A listed step that fails to restore (corrupted files) is skipped
with a warning and the previous one is used.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import grain
import orbax.checkpoint as ocp

from phijax.config import CheckpointConfig
from phijax.train.state import StateLayout, TrainState

log = logging.getLogger(__name__)


class Checkpoints:
    """Save and restore train state + data-iterator state of one run directory."""

    def __init__(self, run_dir: str | Path, cfg: CheckpointConfig):
        self.directory = Path(run_dir).absolute() / "checkpoints"
        options = ocp.CheckpointManagerOptions(
            max_to_keep=cfg.keep, enable_async_checkpointing=cfg.async_save, create=True,
        )
        self.manager = ocp.CheckpointManager(
            self.directory, options=options, item_names=("params", "opt_state", "data", "meta"),
        )

    def steps(self) -> list[int]:
        """Complete checkpoint steps, oldest first."""
        return sorted(self.manager.all_steps())

    def save(self, step: int, state: TrainState, data_iterator: Any, meta: dict[str, Any], force: bool = False) -> bool:
        """Start saving `step` (asynchronously when configured); the data state is captured now."""
        args = ocp.args.Composite(
            params=ocp.args.StandardSave(state["params"]),
            opt_state=ocp.args.StandardSave(state["opt_state"]),
            data=grain.checkpoint.CheckpointSave(data_iterator),
            meta=ocp.args.JsonSave({"step": step, **meta}),
        )
        return self.manager.save(step, args=args, force=force)

    def restore_latest(self, layout: StateLayout, data_iterator: Any) -> tuple[int, TrainState, dict] | None:
        """(step, state, meta) of the newest checkpoint that restores; None when there is none."""
        abstract = layout.sharded_abstract()
        for step in reversed(self.steps()):
            args = ocp.args.Composite(
                params=ocp.args.StandardRestore(abstract["params"]),
                opt_state=ocp.args.StandardRestore(abstract["opt_state"]),
                data=grain.checkpoint.CheckpointRestore(data_iterator),
                meta=ocp.args.JsonRestore(),
            )
            try:
                restored = self.manager.restore(step, args=args)
            except Exception as err:  # orbax raises many types for damaged files
                reason = str(err).splitlines()[0][:200] if str(err) else type(err).__name__
                log.warning("checkpoint step %d in %s cannot be restored (%s); trying the previous one",
                            step, self.directory, reason)
                continue
            return step, {"params": restored["params"], "opt_state": restored["opt_state"]}, restored["meta"]
        return None

    def wait(self) -> None:
        """Block until pending asynchronous saves are committed."""
        self.manager.wait_until_finished()

    def close(self) -> None:
        self.manager.wait_until_finished()
        self.manager.close()

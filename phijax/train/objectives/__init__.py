"""Objectives: what a training stage is to the one trainer (`phijax.train.trainer`).

An objective says how its config is checked, where its resumable batches come from, what it prepares
before the first step (DPO: the reference log-probs), how host rows become global arrays, and its loss:

    loss(model, micro_batch, extra) -> (loss_sum, weight, metric_sums)

`loss_sum` and each of `metric_sums` are sums over the micro-batch's examples and `weight` counts what
they are summed over (trained tokens for next-token, pairs for preference); the step adds them over
micro-batches and divides once by the total weight, so a step's loss is the same however the batch is
split. Everything else — start-up, resume, the jitted step, bookkeeping, hooks — is the trainer's.

Stages are registered by name (`train.stage`); a new preference loss is a class in `preference.py`,
a new kind of objective one module and one line here.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import jax
    from jax.sharding import NamedSharding

    from phijax.model.phi4 import Phi4
    from phijax.train.state import StateLayout

from phijax.errors import ConfigError

Batch = dict[str, Any]  # name → [rows, ...] arrays (host numpy, or global jax arrays)
Job = Any  # a `phijax.train.config.TrainJob` (not imported: that module imports this one to validate)

OBJECTIVES: dict[str, str] = {
    "pretrain": "phijax.train.objectives.next_token:Pretrain",
    "midtrain": "phijax.train.objectives.next_token:Midtrain",
    "sft": "phijax.train.objectives.next_token:SFT",
    "dpo": "phijax.train.objectives.preference:Preference",
}
"""`train.stage` → `module:Class` of its objective (imported on use: objectives import jax)."""


class Objective(Protocol):
    """A training stage, as the trainer and the step see it."""

    weight_name: str  # what a step's weight counts, logged under this name ("trained_tokens", "pairs")
    progress: dict[str, str]  # metric → label shown on the progress line after loss, lr and grad_norm

    @classmethod
    def validate(cls, job: Job) -> None:
        """Raise ConfigError (one line: key and fix) for what this stage cannot train."""

    def batches(self, job: Job, sharding: NamedSharding) -> Iterator[Batch]:
        """This process's rows of every global batch, forever or until the data ends; a grain iterator
        (get_state/set_state), so checkpoints resume it exactly."""

    def prepare(self, layout: StateLayout, sharding: NamedSharding, initial: Callable[[], Any]) -> Any:
        """Work before the first step; returns the step's `extra` input (None, or e.g. frozen parameters).
        `initial()` gives the run's initial parameters (made once, on first call)."""

    def extra_shardings(self, layout: StateLayout) -> Any:
        """Shardings of `extra` for the jitted step (None when `prepare` returns None)."""

    def global_batch(self, local: Batch, sharding: NamedSharding) -> dict[str, jax.Array]:
        """Host rows → global arrays, rows sharded over the batch axes (every array at least 2-D)."""

    def examples(self, batch: Batch) -> int:
        """Examples in a batch (rows, or pairs): the unit micro-batches are cut in."""

    def loss(self, model: Phi4, micro: Batch, extra: Any) -> tuple[jax.Array, jax.Array, dict[str, jax.Array]]:
        """(loss_sum, weight, metric_sums) of one micro-batch, fp32 scalars (see the module docstring)."""

    def tokens(self, local: Batch) -> int:
        """Positions the model runs over in one global batch, for throughput and MFU."""

    def meta(self) -> dict[str, Any]:
        """What a checkpoint records about this objective besides the step and seed."""


def objective_class(stage: str) -> type:
    """The objective class registered for `stage`; ConfigError naming the registered stages."""
    if stage not in OBJECTIVES:
        raise ConfigError(f"train.stage={stage!r} has no objective: choose one of {', '.join(OBJECTIVES)}")
    module, _, name = OBJECTIVES[stage].partition(":")
    return getattr(importlib.import_module(module), name)


def objective_for(job: Job) -> Objective:
    """The objective of `job.train.stage`, built from the job (not validated: see `TrainJob.validate`)."""
    return objective_class(job.train.stage)(job)


def row_sharding(sharding: NamedSharding, ndim: int) -> NamedSharding:
    """The batch sharding for an array of rank `ndim`: rows over the batch axes, the rest whole."""
    from jax.sharding import NamedSharding, PartitionSpec

    spec = tuple(sharding.spec)[:1] + (None,) * (ndim - 1)
    return NamedSharding(sharding.mesh, PartitionSpec(*spec))


def global_arrays(local: Batch, sharding: NamedSharding, keys: tuple[str, ...] | None = None) -> dict[str, jax.Array]:
    """This process's rows → global arrays sharded over the batch axes (`keys`: which; default all)."""
    import jax
    import numpy as np

    keys = tuple(local) if keys is None else tuple(k for k in keys if k in local)
    return {
        k: jax.make_array_from_process_local_data(row_sharding(sharding, np.ndim(local[k])), np.asarray(local[k]))
        for k in keys
    }


__all__ = ["OBJECTIVES", "Batch", "Objective", "global_arrays", "objective_class", "objective_for", "row_sharding"]

"""Multi-host start-up: one `jax.distributed.initialize` per process, before any other jax call.

Three ways a process learns its place:
- explicit: PHIJAX_COORDINATOR_ADDRESS (host:port), PHIJAX_NUM_PROCESSES, PHIJAX_PROCESS_ID
  (local tests, hand-made launches);
- SLURM (GPU clusters): `srun` sets SLURM_* variables that jax reads itself;
- TPU pods: the TPU runtime's metadata, which jax reads itself (with several slices also the
  MEGASCALE_* variables of the multi-slice runtime).
A single process with none of these set runs without initialising (one host, all local devices).

A run may come back with another number of processes (preemptible capacity). Parameters and
optimizer state restore onto any mesh (orbax reshards them); per-process state — the data iterator,
saved by grain as one `process_<i>-of-<n>.json` per process — is regrouped by `ProcessStateRestore`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
from collections.abc import Mapping
from typing import Any

import grain
import jax
import orbax.checkpoint as ocp
from etils import epath

from phijax.errors import CheckpointError, ConfigError

_initialized = False
log = logging.getLogger(__name__)


def launch_kind(environ: Mapping[str, str]) -> str:
    """`explicit`, `slurm`, `tpu` or `single` for this process's environment (a multi-slice TPU job
    made by GKE JobSet sets MEGASCALE_COORDINATOR_ADDRESS even on single-host slices)."""
    if environ.get("PHIJAX_COORDINATOR_ADDRESS"):
        return "explicit"
    if int(environ.get("SLURM_NTASKS", "1")) > 1:
        return "slurm"
    if environ.get("TPU_WORKER_HOSTNAMES", "").count(",") >= 1 or environ.get("MEGASCALE_COORDINATOR_ADDRESS"):
        return "tpu"
    return "single"


def initialize(environ: Mapping[str, str] | None = None) -> str:
    """Join the multi-process job described by the environment (idempotent); returns its kind."""
    global _initialized
    environ = os.environ if environ is None else environ
    kind = launch_kind(environ)
    if _initialized or kind == "single":
        return kind
    if kind == "explicit":
        try:
            count, index = int(environ["PHIJAX_NUM_PROCESSES"]), int(environ["PHIJAX_PROCESS_ID"])
        except (KeyError, ValueError):
            raise ConfigError(
                "PHIJAX_COORDINATOR_ADDRESS is set: also set PHIJAX_NUM_PROCESSES and PHIJAX_PROCESS_ID to integers"
            ) from None
        if jax.config.jax_platforms in (None, "", "cpu") or environ.get("JAX_PLATFORMS") == "cpu":
            jax.config.update("jax_cpu_collectives_implementation", "gloo")
        jax.distributed.initialize(environ["PHIJAX_COORDINATOR_ADDRESS"], num_processes=count, process_id=index)
    else:
        jax.distributed.initialize()  # SLURM or TPU: jax reads the cluster environment
    _initialized = True
    return kind


# --------------------------------------------------------------------- a different process count
_PROCESS_FILE = re.compile(r"process_(\d+)-of-(\d+)\.json")


class ProcessStateHandler(grain.checkpoint.CheckpointHandler):
    """grain's iterator handler (saves one JSON state per process) whose restore also accepts the
    files of a run with another process count, through the iterator's `set_state_from_processes`
    (`phijax.data.pipeline.BatchIterator` has one: a batch never depends on the process count)."""

    def restore(self, directory: epath.Path, item: Any = None, args: Any = None) -> Any:
        item = item or args.item
        index, count = jax.process_index(), jax.process_count()
        if (directory / f"process_{index}-of-{count}.json").exists():
            return super().restore(directory, item=item)
        saved = sorted_process_files(directory)
        if not saved:
            raise CheckpointError(f"{directory} holds no data iterator state: restore an earlier step")
        saved_count = len(saved)
        if not hasattr(item, "set_state_from_processes"):
            raise CheckpointError(
                f"the data iterator state was saved by {saved_count} processes and {type(item).__name__} cannot "
                f"be regrouped for {count}: resume with {saved_count} processes"
            )
        item.set_state_from_processes([json.loads(path.read_text()) for path in saved])
        log.info("data iterator state of %d process(es) regrouped for %d", saved_count, count)
        if hasattr(item, "start_prefetch"):
            item.start_prefetch()
        return item


def sorted_process_files(directory: epath.Path) -> list[epath.Path]:
    """`process_<i>-of-<n>.json` files of one save, by i; CheckpointError if some process's is missing."""
    found = {}
    for path in directory.iterdir():
        match = _PROCESS_FILE.fullmatch(path.name)
        if match:
            found[(int(match[2]), int(match[1]))] = path
    counts = {n for n, _ in found}
    if counts and (len(counts) > 1 or len(found) != counts.pop()):
        names = ", ".join(sorted(path.name for path in found.values()))
        raise CheckpointError(f"{directory} holds an incomplete set of per-process data states ({names})")
    return [found[key] for key in sorted(found)]


@ocp.args.register_with_handler(ProcessStateHandler, for_save=True)
@dataclasses.dataclass
class ProcessStateSave(ocp.args.CheckpointArgs):
    """Save args of a per-process iterator state (what `grain.checkpoint.CheckpointSave` writes); orbax
    wants a handler to have both."""

    item: Any


@ocp.args.register_with_handler(ProcessStateHandler, for_restore=True)
@dataclasses.dataclass
class ProcessStateRestore(ocp.args.CheckpointArgs):
    """Restore args of a per-process iterator state: `grain.checkpoint.CheckpointRestore` that also
    resumes on another process count (use in place of it)."""

    item: Any

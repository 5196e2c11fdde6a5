"""Multi-host start-up: one `jax.distributed.initialize` per process, before any other jax call.

Three ways a process learns its place:
- explicit: PHIJAX_COORDINATOR_ADDRESS (host:port), PHIJAX_NUM_PROCESSES, PHIJAX_PROCESS_ID
  (local tests, hand-made launches);
- SLURM (GPU clusters): `srun` sets SLURM_* variables that jax reads itself;
- TPU pods: the TPU runtime's metadata, which jax reads itself.
A single process with none of these set runs without initialising (one host, all local devices).
"""

from __future__ import annotations

import os
from typing import Mapping

import jax

from phijax.errors import ConfigError

_initialized = False


def launch_kind(environ: Mapping[str, str]) -> str:
    """"explicit", "slurm", "tpu" or "single" for this process's environment."""
    if environ.get("PHIJAX_COORDINATOR_ADDRESS"):
        return "explicit"
    if int(environ.get("SLURM_NTASKS", "1")) > 1:
        return "slurm"
    if environ.get("TPU_WORKER_HOSTNAMES", "").count(",") >= 1:
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

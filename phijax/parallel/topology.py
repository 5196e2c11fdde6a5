"""TPU topology descriptions on any host, for ahead-of-time compilation (tools/aot_compile.py, tools/plan.py).

libtpu describes a TPU slice (its chips, their memory, the interconnect) without the chips being
there, so the real train step can be compiled for a pod from a CPU host and its per-chip memory read.
"""

from __future__ import annotations

import glob
import os
from typing import Any

from phijax.errors import PhijaxError


class TopologyError(PhijaxError):
    """A TPU topology that cannot be described here: libtpu missing or busy, or a malformed name."""


def quiet_libtpu_off_tpu() -> None:
    """On a host without TPUs: no TPU VM metadata queries (libtpu logs errors otherwise) and no
    libtpu lockfile (there is no TPU to share, so several compiles may run at once)."""
    if not glob.glob("/dev/accel*") and not glob.glob("/dev/vfio/[0-9]*"):
        os.environ.setdefault("TPU_SKIP_MDS_QUERY", "1")
        os.environ.setdefault("ALLOW_MULTIPLE_LIBTPU_LOAD", "1")
        os.environ.setdefault("TPU_WORKER_HOSTNAMES", "localhost")


def tpu_topology(name: str, num_slices: int = 1) -> Any:
    """jax's description of `num_slices` TPU slices of topology `name` (e.g. "v5p:4x4x4").

    Raises TopologyError naming the fix: the install command if libtpu is missing, the lockfile if
    another process holds libtpu, the GENERATION:XxYxZ form for a name libtpu does not know.
    """
    quiet_libtpu_off_tpu()
    import jax
    from jax.experimental import topologies

    if num_slices < 1:
        raise TopologyError(f"--num-slices must be at least 1, got {num_slices}")
    slices = {"num_slices": num_slices} if num_slices > 1 else {}
    try:
        return topologies.get_topology_desc(platform="tpu", topology_name=name, **slices)
    except RuntimeError as err:
        if "not installed" in str(err):
            raise TopologyError(f'libtpu is missing: pip install "jax[tpu]=={jax.__version__}"') from None
        reason = str(err).splitlines()[0]
        if "lockfile" in reason:
            raise TopologyError(
                "another process holds libtpu (/tmp/libtpu_lockfile): wait for it, or set ALLOW_MULTIPLE_LIBTPU_LOAD=1"
            ) from None
        raise TopologyError(
            f"no TPU topology {name!r} ({reason}); write GENERATION:XxYxZ, e.g. v5p:2x2x2 or v5e:4x4"
        ) from None

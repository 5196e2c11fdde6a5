"""The device mesh of a command (`mesh:`): axis sizes and the logical-axis → mesh-axis rules.

Pure: no jax. Changing the parallelism is a change here, never in the model (DESIGN § Sharding).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from phijax.errors import ConfigError

DEFAULT_RULES: dict[str, Any] = {
    "batch": ["data", "fsdp"],
    "embed": "fsdp",
    "vocab": "tensor",
    "heads": "tensor",
    "kv_heads": "tensor",
    "mlp": "tensor",
    "head_dim": None,
    "norm": None,
    "layers": None,
    "length": None,
}


@dataclass(frozen=True)
class MeshConfig:
    """Device mesh sizes (-1: all devices left over) and the logical-axis → mesh-axis rules."""

    data: int = field(default=1, metadata={"help": "data-parallel axis size (-1: the devices left over)"})
    fsdp: int = field(
        default=-1, metadata={"help": "fully-sharded data-parallel axis size (-1: the devices left over)"}
    )
    tensor: int = field(default=1, metadata={"help": "tensor-parallel axis size (heads, MLP, vocabulary)"})
    dcn_data: int = field(
        default=1,
        metadata={
            "help": "granules (TPU slices, or GPU nodes as processes) the data axis spans; fsdp and tensor stay "
            "inside one granule, so only the gradient all-reduce crosses the data-centre network (1: one level)"
        },
    )
    cpu_devices: int | None = field(
        default=None,
        metadata={"help": "on a host with no accelerator, split the CPU into this many XLA devices (tests, laptops)"},
    )
    rules: dict[str, Any] = field(
        default_factory=lambda: dict(DEFAULT_RULES),
        metadata={"help": "logical axis name → mesh axis (or list of axes, or null: replicated)"},
    )

    def __post_init__(self) -> None:
        for axis in ("data", "fsdp", "tensor"):
            size = getattr(self, axis)
            if size == 0 or size < -1:
                raise ConfigError(f"mesh.{axis} is {size}: use a positive size, or -1 for the devices left over")
        if self.dcn_data < 1:
            raise ConfigError(f"mesh.dcn_data is {self.dcn_data}: use the number of slices or nodes, 1 for one level")
        if self.cpu_devices is not None and self.cpu_devices < 1:
            raise ConfigError(f"mesh.cpu_devices is {self.cpu_devices}: use a positive count, or null")

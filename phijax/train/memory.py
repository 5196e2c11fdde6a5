"""Memory of a training step per device: analytic estimates and the compiler's own accounting.

Analytic (no compilation, from shapes and shardings alone):

    state       = params (fp32 master weights) + optimizer state (AdamW: 2 fp32 moments)
    gradients   = one fp32 tree the size of the parameters (sharded like them)
    activations = saved per layer (by remat policy) x layers + one layer's recompute working set
                  + one chunk of LM-head logits; a rough figure, good to a factor of ~2

Every byte count is for one device: each array's shard shape comes from its `NamedSharding`, so
fsdp and tensor parallelism are counted exactly, replicated arrays in full.

Compiled: `compile_train_step` lowers the real `make_train_step` with abstract inputs
(`jax.ShapeDtypeStruct` carrying shardings) for any device set — including the devices of a TPU
topology description on a CPU host — and `compiled_memory` reads `compiled.memory_analysis()`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp

from phijax.model.config import ModelConfig
from phijax.parallel.mesh import batch_sharding, build_mesh
from phijax.train.config import TrainJob
from phijax.train.optim import make_optimizer
from phijax.train.state import StateLayout, state_layout
from phijax.train.step import MODEL_INPUTS, make_train_step

# HBM per device in GiB, by the start of `device.device_kind` (longest prefix wins).
HBM_GIB = {
    "TPU v5 lite": 16.0,  # v5e
    "TPU v5": 95.0,  # v5p
    "TPU v6 lite": 32.0,  # v6e (Trillium)
    "TPU v4": 32.0,
    "NVIDIA H100": 80.0,
    "NVIDIA H200": 141.0,
    "NVIDIA A100": 80.0,
}


def device_memory_gib(device: jax.Device) -> float | None:
    """HBM of one device (GiB) from the table above; None for an unknown kind (pass --hbm-gib)."""
    kind = device.device_kind
    matches = [p for p in HBM_GIB if kind.startswith(p)]
    return HBM_GIB[max(matches, key=len)] if matches else None


# ------------------------------------------------------------------------------------ analytic
@dataclass(frozen=True)
class AnalyticMemory:
    """Per-device bytes of the train step's parts (see the module docstring)."""

    params: int
    opt_state: int
    grads: int
    activations: int

    @property
    def state(self) -> int:
        return self.params + self.opt_state

    @property
    def total(self) -> int:
        return self.params + self.opt_state + self.grads + self.activations


def per_device_bytes(abstract: Any, shardings: Any) -> int:
    """Bytes one device holds of a pytree of ShapeDtypeStructs laid out by matching NamedShardings."""
    leaves = jax.tree.leaves(abstract)
    sharding_leaves = jax.tree.leaves(shardings)
    return sum(math.prod(s.shard_shape(a.shape)) * jnp.dtype(a.dtype).itemsize for a, s in zip(leaves, sharding_leaves))


def activation_bytes(cfg: ModelConfig, rows: int, seq_len: int, tensor: int, loss_chunk: int) -> int:
    """Rough activation memory of one micro-batch on one device.

    rows: sequences per device per micro-batch; tensor: the tensor-parallel degree (splits heads
    and the MLP width). The XLA attention path materialises fp32 scores [rows, heads, seq, seq];
    cuDNN and splash flash attention keep only their fp32 softmax statistics [rows, heads, seq].
    """
    c = jnp.dtype(cfg.compute_dtype).itemsize
    d, hd, f = cfg.hidden_size, cfg.head_dim, cfg.intermediate_size // tensor
    h, kv = cfg.num_heads // tensor, max(cfg.num_kv_heads // tensor, 1)
    tokens = rows * seq_len
    residual = tokens * d * c  # a layer's input, what "full" remat keeps
    projections = tokens * (h + 2 * kv) * hd * c * 2 + tokens * h * hd * c  # q k v (+ roped), attn out
    mlp = 3 * tokens * f * c  # gate, up, silu(gate) * up
    scores = rows * h * seq_len * (seq_len * (4 + c) if cfg.attention == "xla" else 4)
    whole_layer = 4 * residual + projections + mlp + scores
    saved = {
        "none": whole_layer,
        "full": residual,
        "dots": residual + projections + mlp + scores,
        "dots_no_batch": residual + projections + mlp,
    }[cfg.remat]
    logits = rows * min(loss_chunk, seq_len) * cfg.vocab_size * 4 * 3  # logits, softmax, its grad
    return cfg.num_layers * saved + 2 * whole_layer + logits


def analytic_memory(cfg: TrainJob, layout: StateLayout, mesh: jax.sharding.Mesh) -> AnalyticMemory:
    """Per-device parameter, optimizer, gradient and activation bytes of `cfg`'s train step."""
    params = per_device_bytes(layout.abstract["params"], layout.shardings["params"])
    opt_state = per_device_bytes(layout.abstract["opt_state"], layout.shardings["opt_state"])
    batch_devices = mesh.shape["data"] * mesh.shape["fsdp"]
    rows = max(cfg.train.global_batch // cfg.train.grad_accum // batch_devices, 1)
    activations = activation_bytes(cfg.model, rows, cfg.train.seq_len, mesh.shape["tensor"], cfg.train.loss_chunk)
    return AnalyticMemory(params=params, opt_state=opt_state, grads=params, activations=activations)


# ------------------------------------------------------------------------------------ compiled
@dataclass(frozen=True)
class CompiledMemory:
    """Per-device bytes from `compiled.memory_analysis()`; `total` counts donated buffers once."""

    arguments: int
    outputs: int
    aliased: int
    temporaries: int
    generated_code: int

    @property
    def total(self) -> int:
        return self.arguments + self.outputs - self.aliased + self.temporaries + self.generated_code


def compile_train_step(cfg: TrainJob, devices: Sequence[jax.Device]) -> tuple[Any, StateLayout, jax.sharding.Mesh]:
    """(compiled step, layout, mesh): the real train step lowered for `devices` with abstract inputs.

    Nothing is allocated: state and batch are ShapeDtypeStructs with their shardings, so this works
    for devices that exist only as a topology description (AOT compilation for a TPU pod).
    """
    mesh = build_mesh(cfg.mesh, devices=devices)
    tx = make_optimizer(cfg.optim, cfg.train.steps)
    layout = state_layout(cfg.model, tx, mesh, cfg.mesh.rules)
    tokens = batch_sharding(mesh, cfg.mesh.rules)
    step = make_train_step(layout, tx, tokens, cfg.train.grad_accum, cfg.train.loss_chunk)
    state = layout.sharded_abstract()
    shape = (cfg.train.global_batch, cfg.train.seq_len)
    batch = {k: jax.ShapeDtypeStruct(shape, jnp.int32, sharding=tokens) for k in MODEL_INPUTS}
    return step.lower(state, batch).compile(), layout, mesh


def compiled_memory(compiled: Any) -> CompiledMemory:
    """The compiler's per-device memory accounting of a compiled step."""
    stats = compiled.memory_analysis()
    return CompiledMemory(
        arguments=stats.argument_size_in_bytes,
        outputs=stats.output_size_in_bytes,
        aliased=stats.alias_size_in_bytes,
        temporaries=stats.temp_size_in_bytes,
        generated_code=stats.generated_code_size_in_bytes,
    )

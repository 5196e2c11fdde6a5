"""The device mesh and the logical-axis rules that map parameters and batches onto it.

Parameters carry logical axis names (`embed`, `heads`, `mlp`, ...); the config's `mesh.rules` table
maps each to a mesh axis (`data`, `fsdp`, `tensor`), a list of them, or nothing (replicated).
Changing the parallelism is a config change: the model never names a mesh axis.
"""

from __future__ import annotations

import contextvars
import logging
import math
import os
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import partial
from typing import Any

import jax
import numpy as np
from flax import nnx
from jax.experimental import mesh_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from phijax.errors import ConfigError
from phijax.parallel.config import MeshConfig

MESH_AXES = ("data", "fsdp", "tensor")
log = logging.getLogger(__name__)


def request_cpu_devices(count: int | None) -> None:
    """Ask XLA for `count` host devices; must run before jax first touches a backend."""
    flags = os.environ.get("XLA_FLAGS", "")
    if count and "xla_force_host_platform_device_count" not in flags:
        os.environ["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={count}".strip()


def mesh_shape(cfg: MeshConfig, num_devices: int) -> tuple[int, int, int]:
    """(data, fsdp, tensor) sizes with the single -1 resolved to the devices left over."""
    sizes = [cfg.data, cfg.fsdp, cfg.tensor]
    if sizes.count(-1) > 1:
        raise ConfigError('at most one of mesh.data, mesh.fsdp, mesh.tensor may be -1 ("the rest")')
    if any(s == 0 or s < -1 for s in sizes):
        raise ConfigError(f"mesh sizes must be positive or -1, got data={cfg.data} fsdp={cfg.fsdp} tensor={cfg.tensor}")
    fixed = math.prod(s for s in sizes if s != -1)
    if -1 in sizes:
        if num_devices % fixed:
            raise ConfigError(
                f"mesh: {num_devices} devices cannot be split with the fixed sizes (product {fixed}); "
                "choose mesh sizes that divide the device count"
            )
        sizes[sizes.index(-1)] = num_devices // fixed
    if math.prod(sizes) > num_devices:
        raise ConfigError(
            f"mesh data={sizes[0]} fsdp={sizes[1]} tensor={sizes[2]} needs {math.prod(sizes)} devices, "
            f"only {num_devices} present: shrink mesh.* or set one to -1"
        )
    return tuple(sizes)  # type: ignore[return-value]


def build_mesh(cfg: MeshConfig, devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A ('data', 'fsdp', 'tensor') mesh over `devices` (default: all of `jax.devices()`).

    With `mesh.dcn_data` = 1 the devices are reshaped in order and a mesh smaller than the device
    count uses the first devices. With `mesh.dcn_data` = N > 1 the mesh is two-level (`hybrid_devices`).
    """
    devices = list(devices if devices is not None else jax.devices())
    shape = mesh_shape(cfg, len(devices))
    if cfg.dcn_data > 1:
        return Mesh(hybrid_devices(shape, cfg.dcn_data, devices), MESH_AXES)
    used = math.prod(shape)
    if used < len(devices):
        log.warning("mesh %s uses the first %d of %d devices", dict(zip(MESH_AXES, shape)), used, len(devices))
    return Mesh(np.asarray(devices[:used]).reshape(shape), MESH_AXES)


def granule_attribute(devices: Sequence[jax.Device], dcn_data: int) -> str:
    """The device attribute that names a granule: `slice_index` when the devices form `dcn_data` TPU
    slices, else `process_index` when they form `dcn_data` processes (GPU nodes, CPU hosts: platforms
    with no slice index); ConfigError otherwise."""
    slices = {getattr(d, "slice_index", None) for d in devices}
    if None not in slices and len(slices) == dcn_data:
        return "slice_index"
    processes = {d.process_index for d in devices}
    if len(processes) == dcn_data:
        return "process_index"
    found = f"{len(slices)} slice(s)" if None not in slices else "no slice index"
    raise ConfigError(
        f"mesh.dcn_data={dcn_data} but the {len(devices)} devices have {found} and {len(processes)} process(es): "
        "set mesh.dcn_data to the number of TPU slices or to the number of processes (one per GPU node)"
    )


def hybrid_devices(shape: Sequence[int], dcn_data: int, devices: Sequence[jax.Device]) -> np.ndarray:
    """[data, fsdp, tensor] devices where `data` spans `dcn_data` granules (slices or processes) and
    `fsdp`, `tensor` and the rest of `data` stay inside each granule.

    Why: the mesh from `jax.devices()` in order can put an fsdp group across the data-centre network
    (or InfiniBand), so every parameter all-gather would cross it; here only the `data` axis does,
    which carries one gradient all-reduce per step.
    """
    data, fsdp, tensor = shape
    if data % dcn_data:
        raise ConfigError(
            f"mesh.data ({data}) must be a multiple of mesh.dcn_data ({dcn_data}): the data axis spans the granules"
        )
    attribute = granule_attribute(devices, dcn_data)
    inner = (data // dcn_data, fsdp, tensor)
    sizes = sorted(set(Counter(getattr(d, attribute) for d in devices).values()))
    if sizes != [math.prod(inner)]:
        raise ConfigError(
            f"mesh: data/dcn_data x fsdp x tensor = {inner[0]} x {fsdp} x {tensor} devices do not fill a "
            f"{attribute.removesuffix('_index')} of {' or '.join(map(str, sizes))} devices; make "
            "mesh.data/mesh.dcn_data x mesh.fsdp x mesh.tensor equal one slice's (or process's) device count"
        )
    granule_is_process = attribute == "process_index"
    grid = mesh_utils.create_hybrid_device_mesh(inner, (dcn_data, 1, 1), devices, process_is_granule=granule_is_process)
    granules = np.vectorize(lambda d: getattr(d, attribute), otypes=[int])(grid).tolist()
    log.info(
        "two-level mesh: data spans %d granules by %s; %s by [data][fsdp][tensor]: %s",
        dcn_data,
        attribute,
        attribute,
        granules,
    )
    return grid


def logical_to_spec(axes: Sequence[str | None], rules: dict[str, Any]) -> PartitionSpec:
    """PartitionSpec for logical axis names; a mesh axis already used by an earlier dim is dropped."""
    used: set[str] = set()
    spec = []
    for name in axes:
        if name is None:
            spec.append(None)
            continue
        if name not in rules:
            raise ConfigError(f"mesh.rules has no entry for logical axis `{name}`: add `{name}: <mesh axis or null>`")
        target = rules[name]
        targets = [target] if isinstance(target, str) else list(target or [])
        unknown = [t for t in targets if t not in MESH_AXES]
        if unknown:
            raise ConfigError(
                f"mesh.rules.{name} names unknown mesh axis `{unknown[0]}` (axes: {', '.join(MESH_AXES)})"
            )
        free = tuple(t for t in targets if t not in used)
        used.update(free)
        spec.append(free[0] if len(free) == 1 else (free or None))
    return PartitionSpec(*spec)


def sharding_for(
    mesh: Mesh, axes: Sequence[str | None], rules: dict[str, Any], shape: Sequence[int], name: str
) -> NamedSharding:
    """NamedSharding of one array, refusing a dimension its mesh axes do not divide."""
    spec = logical_to_spec(axes, rules)
    for dim, (size, entry) in enumerate(zip(shape, spec)):
        parts = math.prod(mesh.shape[a] for a in ((entry,) if isinstance(entry, str) else entry or ()))
        if size % parts:
            raise ConfigError(
                f"{name}: dimension {dim} ({axes[dim]}, size {size}) does not divide over mesh axes {entry} "
                f"({parts} devices); change mesh sizes or mesh.rules.{axes[dim]}"
            )
    return NamedSharding(mesh, spec)


def state_shardings(abstract_state: nnx.State, mesh: Mesh, rules: dict[str, Any]) -> nnx.State:
    """A NamedSharding for every Variable of an abstract state, from its `out_sharding` names."""

    def one(path, var):
        axes = var.get_metadata().get("out_sharding") or (None,) * len(var.shape)
        name = ".".join(str(getattr(k, "key", k)) for k in path)
        return var.replace(sharding_for(mesh, axes, rules, var.shape, name))

    return jax.tree_util.tree_map_with_path(one, abstract_state, is_leaf=lambda x: isinstance(x, nnx.Variable))


def batch_sharding(mesh: Mesh, rules: dict[str, Any]) -> NamedSharding:
    """Sharding of [batch, length] token arrays."""
    return NamedSharding(mesh, logical_to_spec(("batch", "length"), rules))


def init_sharded(make: Callable[[], nnx.Module], mesh: Mesh, rules: dict[str, Any]) -> nnx.Module:
    """Build a module with every Variable created already sharded (inside jit, no full host copy)."""
    graphdef, abstract_state = nnx.split(nnx.eval_shape(make))
    shardings = state_shardings(abstract_state, mesh, rules)

    @partial(jax.jit, out_shardings=shardings)
    def init() -> nnx.State:
        return nnx.split(make())[1]

    return nnx.merge(graphdef, init())


_BATCH_SHARDING: contextvars.ContextVar[NamedSharding | None] = contextvars.ContextVar("batch_sharding", default=None)


@contextmanager
def batch_sharded_activations(sharding: NamedSharding) -> Iterator[None]:
    """While tracing inside this context, `shard_like_batch` pins activations to `sharding`'s batch axes.

    Without the pin XLA may propagate the embedding table's `embed`-over-`fsdp` sharding into the
    residual stream and give every device the whole batch (seen in the v5p AOT compile:
    global-batch MLP activations on every chip).
    """
    token = _BATCH_SHARDING.set(sharding)
    try:
        yield
    finally:
        _BATCH_SHARDING.reset(token)


def current_batch_sharding() -> NamedSharding | None:
    """The batch sharding of the enclosing `batch_sharded_activations`, or None outside one."""
    return _BATCH_SHARDING.get()


def shard_like_batch(x: jax.Array) -> jax.Array:
    """Constrain [batch, length, ...] activations to the batch sharding in context (else no-op)."""
    sharding = _BATCH_SHARDING.get()
    if sharding is None:
        return x
    spec = PartitionSpec(*sharding.spec[:2], *([None] * (x.ndim - 2)))
    return jax.lax.with_sharding_constraint(x, NamedSharding(sharding.mesh, spec))

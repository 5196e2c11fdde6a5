"""The training state — parameters and optimizer state as plain pytrees — created sharded.

`params` is the model's parameters as a nested dict (`nnx.to_pure_dict` layout, layers stacked):
the same tree a checkpoint's `params` item and a model directory hold. Nothing full-size is built on
a host: shapes come from `nnx.eval_shape`, and initialisation runs inside `jit` with output
shardings taken from the parameters' logical axes and the config's rules.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import jax
import optax
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from phijax.errors import CheckpointError
from phijax.model.checkpoint import resolve_checkpoint, restore_params
from phijax.model.config import ModelConfig
from phijax.model.phi4 import Phi4
from phijax.parallel.mesh import state_shardings

log = logging.getLogger(__name__)
TrainState = dict[str, Any]  # {"params": nested dict, "opt_state": optax state}


@dataclass(frozen=True)
class StateLayout:
    """How the model and its train state are laid out: graph, abstract shapes and shardings."""

    graphdef: Any
    abstract: TrainState  # ShapeDtypeStructs
    shardings: TrainState  # NamedShardings

    def sharded_abstract(self) -> TrainState:
        """ShapeDtypeStructs that carry their shardings: restore targets and AOT inputs."""
        return jax.tree.map(
            lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), self.abstract, self.shardings
        )


def state_layout(cfg: ModelConfig, tx: optax.GradientTransformation, mesh: Mesh, rules: dict[str, Any]) -> StateLayout:
    """Shapes and shardings of {params, opt_state}; optimizer moments are sharded like their params."""
    graphdef, abstract_vars = nnx.split(nnx.eval_shape(lambda: Phi4(cfg, rngs=nnx.Rngs(0))))
    params = nnx.to_pure_dict(abstract_vars)
    param_shardings = nnx.to_pure_dict(state_shardings(abstract_vars, mesh, rules))
    opt_state = jax.eval_shape(tx.init, params)
    replicated = NamedSharding(mesh, PartitionSpec())
    opt_shardings = optax.tree_utils.tree_map_params(
        tx,
        lambda _, sharding: sharding,
        opt_state,
        param_shardings,
        transform_non_params=lambda _: replicated,
    )
    return StateLayout(
        graphdef=graphdef,
        abstract={"params": params, "opt_state": opt_state},
        shardings={"params": param_shardings, "opt_state": opt_shardings},
    )


def init_state(cfg: ModelConfig, tx: optax.GradientTransformation, layout: StateLayout, seed: int) -> TrainState:
    """Fresh parameters (from `seed`) and optimizer state, created directly in their shardings."""
    return state_from_params(initial_params(cfg, layout, seed), tx, layout)


def initial_params(cfg: ModelConfig, layout: StateLayout, seed: int, init_from: str | None = None) -> dict[str, Any]:
    """Parameters a run starts from, in their shardings: restored from `init_from`, else fresh from `seed`."""
    if init_from:
        source = resolve_checkpoint(init_from, what="checkpoint.init_from")
        if source.kind != "phijax":
            raise CheckpointError(
                f"checkpoint.init_from={init_from} is a Hugging Face directory: convert it first "
                f"with `phijax convert from-hf {init_from} DST` and pass DST"
            )
        source = source.path
        log.info("initialising parameters from %s", source)
        return restore_params(source, layout.sharded_abstract()["params"])

    def init() -> dict[str, Any]:
        return nnx.to_pure_dict(nnx.state(Phi4(cfg, rngs=nnx.Rngs(seed))))

    return jax.jit(init, out_shardings=layout.shardings["params"])()


def state_from_params(params: dict[str, Any], tx: optax.GradientTransformation, layout: StateLayout) -> TrainState:
    """A train state around given (already sharded) parameters, with a fresh optimizer state."""
    opt_state = jax.jit(tx.init, out_shardings=layout.shardings["opt_state"])(params)
    return {"params": params, "opt_state": opt_state}

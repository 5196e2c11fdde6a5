"""The jit-compiled train step: gradient accumulation, chunked loss, clipping and AdamW.

The loss of a step is the mean next-token cross-entropy over every trained token of the global
batch, however it is split into micro-batches: micro-batches return summed losses and token counts,
and the gradient is divided once by the total count.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import optax
from flax import nnx
from jax.sharding import NamedSharding

from phijax.parallel.mesh import batch_sharded_activations
from phijax.train.losses import next_token_loss
from phijax.train.state import StateLayout, TrainState

# input_ids, targets, positions, loss_mask and optionally segment_ids: [batch, seq]. Without
# segment_ids every row is one document and attention is causal only (no document mask), the form
# cuDNN's flash attention runs fastest.
Batch = dict[str, jax.Array]
MODEL_INPUTS = ("input_ids", "targets", "positions", "segment_ids", "loss_mask")


def make_train_step(
    layout: StateLayout,
    tx: optax.GradientTransformation,
    batch_sharding: NamedSharding,
    grad_accum: int = 1,
    loss_chunk: int = 1024,
) -> Callable[[TrainState, Batch], tuple[TrainState, dict[str, jax.Array]]]:
    """A jitted `step(state, batch) -> (state, metrics)`; the input state's buffers are donated."""

    def micro_loss(params: dict[str, Any], micro: Batch) -> tuple[jax.Array, jax.Array]:
        micro = {k: jax.lax.with_sharding_constraint(v, batch_sharding) for k, v in micro.items()}
        model = nnx.merge(layout.graphdef, params)
        with batch_sharded_activations(batch_sharding):
            hidden = model.hidden_states(micro["input_ids"], micro["positions"], micro.get("segment_ids"))
        return next_token_loss(hidden, model.lm_head[...], micro["targets"], micro["loss_mask"], loss_chunk)

    def step(state: TrainState, batch: Batch) -> tuple[TrainState, dict[str, jax.Array]]:
        params = state["params"]
        grad_fn = jax.value_and_grad(micro_loss, has_aux=True)

        def accumulate(carry, micro):
            grads, loss_sum, count = carry
            (loss, n), g = grad_fn(params, micro)
            return (jax.tree.map(jnp.add, grads, g), loss_sum + loss, count + n), None

        zeros = jax.tree.map(jnp.zeros_like, params)
        start = (zeros, jnp.zeros((), jnp.float32), jnp.zeros((), jnp.float32))
        (grads, loss_sum, count), _ = jax.lax.scan(accumulate, start, _micro_batches(batch, grad_accum))
        denominator = jnp.maximum(count, 1.0)
        grads = jax.tree.map(lambda g: g / denominator, grads)
        updates, opt_state = tx.update(grads, state["opt_state"], params)
        new_state = {"params": optax.apply_updates(params, updates), "opt_state": opt_state}
        metrics = {
            "loss": loss_sum / denominator,
            "grad_norm": optax.tree.norm(grads),
            "trained_tokens": count,
        }
        return new_state, metrics

    return jax.jit(step, in_shardings=(layout.shardings, batch_sharding),
                   out_shardings=(layout.shardings, None), donate_argnums=0)


def _micro_batches(batch: Batch, grad_accum: int) -> Batch:
    """[rows, seq] → [grad_accum, rows/grad_accum, seq]; micro-batch i takes rows i, i+k, i+2k, ...

    Strided rows keep every device's shard of the batch inside every micro-batch (no reshuffle).
    """
    def split(x: jax.Array) -> jax.Array:
        return jnp.moveaxis(x.reshape(x.shape[0] // grad_accum, grad_accum, *x.shape[1:]), 1, 0)

    return {k: split(batch[k]) for k in MODEL_INPUTS if k in batch}

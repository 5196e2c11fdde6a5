"""The jit-compiled DPO step and the reference pass: log-probabilities of preference pairs.

A batch holds the rows of `phijax.data.pairs.pair_rows` (B pairs: inputs [B or 2B, seq], targets
and loss_mask [2B, seq], chosen at row 2i and rejected at 2i + 1) plus, with a precomputed reference,
`reference_logps` [B, 2] (chosen, rejected). The step scores both completions with the policy, gets
the reference's scores from the batch or from a frozen copy of the initial parameters, and applies
`dpo_loss`; the gradient flows through the policy only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax.experimental import multihost_utils
from jax.sharding import NamedSharding

from phijax.config import DPOConfig
from phijax.train.losses import completion_logps, dpo_loss
from phijax.train.state import StateLayout, TrainState

Batch = dict[str, jax.Array]
Params = dict[str, Any]


def pair_logps(graphdef: Any, params: Params, batch: Batch, chunk: int = 1024, average: bool = False) -> jax.Array:
    """log p(completion | prompt) of each pair's chosen and rejected completion: [B, 2] float32.

    With shared inputs (one row per pair: single-token completions), the hidden states of a row
    serve both of its target rows.
    """
    model = nnx.merge(graphdef, params)
    hidden = model.hidden_states(batch["input_ids"], batch["positions"], batch["segment_ids"])
    if hidden.shape[0] != batch["targets"].shape[0]:
        hidden = jnp.repeat(hidden, 2, axis=0)
    logps = completion_logps(hidden, model.lm_head[...], batch["targets"], batch["loss_mask"], chunk, average)
    return logps.reshape(-1, 2)


def make_dpo_step(
    layout: StateLayout, tx: optax.GradientTransformation, batch_sharding: NamedSharding,
    dpo: DPOConfig, loss_chunk: int = 1024, grad_accum: int = 1,
) -> Callable[..., tuple[TrainState, dict[str, jax.Array]]]:
    """A jitted `step(state, batch, reference_params=None) -> (state, metrics)`; state is donated.

    `reference_params` (a frozen copy of the initial parameters) is given with `dpo.reference:
    frozen`; otherwise the batch carries `reference_logps`. With `grad_accum` k the pairs are split
    into k equal micro-batches whose gradients and metrics are averaged (the DPO loss is a mean over
    pairs, so this equals one pass over the whole batch). Metrics: loss, grad_norm and `dpo_loss`'s
    rewards/* and logps/*.
    """
    average = dpo.loss_type == "ipo"  # IPO is defined on length-averaged log-probs

    def loss_fn(params: Params, batch: Batch, reference: jax.Array) -> tuple[jax.Array, dict[str, jax.Array]]:
        policy = pair_logps(layout.graphdef, params, batch, loss_chunk, average)
        return dpo_loss(policy[:, 0], policy[:, 1], reference[:, 0], reference[:, 1],
                        dpo.beta, dpo.label_smoothing, dpo.loss_type)

    def step(state: TrainState, batch: Batch, reference_params: Params | None = None):
        params = state["params"]

        def accumulate(carry, micro: Batch):
            micro = {k: jax.lax.with_sharding_constraint(v, _row_sharding(batch_sharding, v)) for k, v in micro.items()}
            if reference_params is None:
                reference = micro["reference_logps"]
            else:
                reference = jax.lax.stop_gradient(pair_logps(layout.graphdef, reference_params, micro, loss_chunk, average))
            (loss, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, micro, reference)
            return jax.tree.map(jnp.add, carry, (grads, {"loss": loss, **metrics})), None

        reference_shape = jax.ShapeDtypeStruct((batch["targets"].shape[0] // 2, 2), jnp.float32)
        loss, metrics = jax.eval_shape(loss_fn, params, batch, reference_shape)
        zeros = jax.tree.map(lambda x: jnp.zeros(x.shape, x.dtype), (params, {"loss": loss, **metrics}))
        (grads, metrics), _ = jax.lax.scan(accumulate, zeros, pair_micro_batches(batch, grad_accum))
        grads, metrics = jax.tree.map(lambda x: x / grad_accum, (grads, metrics))
        updates, opt_state = tx.update(grads, state["opt_state"], params)
        new_state = {"params": optax.apply_updates(params, updates), "opt_state": opt_state}
        return new_state, {**metrics, "grad_norm": optax.tree.norm(grads)}

    in_shardings = (layout.shardings, None, layout.shardings["params"])
    return jax.jit(step, in_shardings=in_shardings if dpo.reference == "frozen" else in_shardings[:2],
                   out_shardings=(layout.shardings, None), donate_argnums=0)


def pair_micro_batches(batch: Batch, grad_accum: int) -> Batch:
    """Every array of a pair batch → [grad_accum, ...]: micro-batch j takes pairs j, j+k, j+2k, ...

    Pairs, not rows, are split: a pair's chosen and rejected rows (2i, 2i + 1) stay together, and
    strided pairs keep each device's shard of the batch in every micro-batch.
    """
    pairs = batch["targets"].shape[0] // 2

    def split(x: jax.Array) -> jax.Array:
        per_pair = x.reshape(pairs, -1, *x.shape[1:])  # [pairs, rows of a pair (1 or 2), ...]
        strided = jnp.moveaxis(per_pair.reshape(pairs // grad_accum, grad_accum, *per_pair.shape[1:]), 1, 0)
        return strided.reshape(grad_accum, -1, *x.shape[1:])

    return {k: split(v) for k, v in batch.items()}


def make_logps_fn(layout: StateLayout, batch_sharding: NamedSharding, dpo: DPOConfig,
                  loss_chunk: int = 1024) -> Callable[[Params, Batch], jax.Array]:
    """A jitted `logps(params, batch) -> [B, 2]` (no gradient): the reference pass, and evaluation."""
    average = dpo.loss_type == "ipo"

    def logps(params: Params, batch: Batch) -> jax.Array:
        batch = {k: jax.lax.with_sharding_constraint(v, _row_sharding(batch_sharding, v)) for k, v in batch.items()}
        return pair_logps(layout.graphdef, params, batch, loss_chunk, average)

    return jax.jit(logps, in_shardings=(layout.shardings["params"], None))


def global_pair_batch(local: dict[str, np.ndarray], sharding: NamedSharding) -> Batch:
    """This process's rows of a pair batch → global arrays sharded over the batch axes."""
    return {k: jax.make_array_from_process_local_data(_row_sharding(sharding, v), np.asarray(v))
            for k, v in local.items() if k != "pair_index"}


def to_host(x: jax.Array) -> np.ndarray:
    """A global (possibly multi-host) array gathered whole on every host."""
    if jax.process_count() > 1:
        return np.asarray(multihost_utils.process_allgather(x, tiled=True))
    return np.asarray(jax.device_get(x))


def _row_sharding(batch_sharding: NamedSharding, x: Any) -> NamedSharding:
    """The batch sharding for an array of any rank: rows over the batch axes, the rest whole."""
    spec = tuple(batch_sharding.spec)[:1] + (None,) * (np.ndim(x) - 1)
    return NamedSharding(batch_sharding.mesh, jax.sharding.PartitionSpec(*spec))


def reference_logps(pairs: Any, params: Params, logps_fn: Callable[[Params, Batch], jax.Array],
                    global_batch: int, seq_len: int, pad_id: int, sharding: NamedSharding) -> np.ndarray:
    """[num pairs, 2] log-probs of every pair's chosen and rejected completion under `params`.

    One pass in pair order, in global batches of `global_batch` pairs (the last one filled by
    repeating the last pair); every host ends with the whole array.
    """
    from phijax.data.pairs import pair_rows

    count, local = len(pairs), global_batch // jax.process_count()
    first = jax.process_index() * local
    out = np.zeros((count, 2), np.float32)
    for start in range(0, count, global_batch):
        indices = [min(start + first + j, count - 1) for j in range(local)]
        rows, _ = pair_rows([pairs[i] for i in indices], seq_len, pad_id, shared=pairs.single_token)
        logps = to_host(logps_fn(params, global_pair_batch(rows, sharding)))
        n = min(global_batch, count - start)
        out[start:start + n] = logps[:n]
    return out

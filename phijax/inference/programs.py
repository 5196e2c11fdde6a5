"""The compiled generation programs and how their rows are laid over the mesh.

One program per `Plan` (batch, prompt bucket, max_new_tokens, sampling method, stop tokens,
shardings): prefill, then a `lax.while_loop` over decode steps that ends early once every row has
emitted a stop token. Rows are sharded over the mesh axes of the `batch` rule, so a batch is padded
to a multiple of those devices (`padded_batch`); the cache follows the rules' `CACHE_AXES`.

Randomness. Row r's token at step t is drawn with `fold_in(fold_in(key(seed), row_id[r]), t)`: a row's
sample depends on the seed and its row id, never on which other rows share its batch.

Many rollouts from one prefix are the PTS workload: `continuations_program` prefills the prefix once
(batch 1) and copies its cache to the n rows before decoding.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from phijax.inference.cache import CACHE_AXES, KVCache, decode_step, prefill
from phijax.inference.sampling import SamplingMethod
from phijax.model.config import ModelConfig
from phijax.model.phi4 import Phi4
from phijax.parallel.mesh import batch_sharded_activations, logical_to_spec


# ------------------------------------------------------------------------------------- sharding
def batch_devices(mesh: Mesh | None, rules: dict[str, Any]) -> int:
    """How many devices the `batch` rule shards rows over (1 without a mesh)."""
    if mesh is None:
        return 1
    return _axes_size(mesh, logical_to_spec(("batch",), rules)[0])


def padded_batch(rows: int, mesh: Mesh | None, rules: dict[str, Any]) -> int:
    """`rows` rounded up to a multiple of the devices the batch axis is sharded over."""
    devices = batch_devices(mesh, rules)
    return -(-rows // devices) * devices


def divisible_sharding(mesh: Mesh, rules: dict[str, Any], axes: Sequence[str], shape: Sequence[int]) -> NamedSharding:
    """The rules' sharding of an activation, replicating any dimension its mesh axes do not divide
    (e.g. a single kv head on a tensor-parallel mesh)."""
    spec = []
    for size, entry in zip(shape, logical_to_spec(axes, rules)):
        spec.append(entry if size % _axes_size(mesh, entry) == 0 else None)
    return NamedSharding(mesh, PartitionSpec(*spec))


def model_mesh(model: Phi4) -> Mesh | None:
    """The mesh the model's parameters are sharded over; None for a model on one device."""
    sharding = getattr(model.embed[...], "sharding", None)
    if isinstance(sharding, NamedSharding) and sharding.mesh.size > 1:
        return sharding.mesh
    return None


def _axes_size(mesh: Mesh, entry: Any) -> int:
    names = (entry,) if isinstance(entry, str) else tuple(entry or ())
    return math.prod(mesh.shape[a] for a in names)


def constrain(x: jax.Array, sharding: NamedSharding | None) -> jax.Array:
    """`with_sharding_constraint`, or `x` unchanged without a mesh."""
    return x if sharding is None else jax.lax.with_sharding_constraint(x, sharding)


def rows_sharded(sharding: NamedSharding | None) -> contextlib.AbstractContextManager:
    """Pin the model's residual stream to the row sharding while tracing (as the train step does)."""
    return contextlib.nullcontext() if sharding is None else batch_sharded_activations(sharding)


# ------------------------------------------------------------------------------------ the plan
@dataclass(frozen=True)
class Plan:
    """Everything static about one compiled generation program (hashable: a jit cache key)."""

    max_new_tokens: int
    cache_len: int
    sampling: SamplingMethod
    stop_tokens: tuple[int, ...]
    pad_id: int
    cache_sharding: NamedSharding | None
    row_sharding: NamedSharding | None


def make_plan(
    cfg: ModelConfig,
    batch: int,
    prompt_len: int,
    max_new_tokens: int,
    sampling: SamplingMethod,
    stop_tokens: tuple[int, ...],
    mesh: Mesh | None,
    rules: dict[str, Any],
) -> Plan:
    """The plan of `batch` rows of `prompt_len` prompt slots and `max_new_tokens` decode steps."""
    cache_len = prompt_len + max_new_tokens
    cache_shape = (cfg.num_layers, batch, cache_len, cfg.num_kv_heads, cfg.head_dim)
    cache_sharding = None if mesh is None else divisible_sharding(mesh, rules, CACHE_AXES, cache_shape)
    row_sharding = None if mesh is None else divisible_sharding(mesh, rules, ("batch",), (batch,))
    return Plan(max_new_tokens, cache_len, sampling, stop_tokens, cfg.pad_token_id, cache_sharding, row_sharding)


# ---------------------------------------------------------------------------------- decode loop
class Decoded(NamedTuple):
    """The decode loop's carry: rows' outputs so far ([batch, max_new_tokens]) and where they stand."""

    step: jax.Array  # next output column
    last: jax.Array  # [batch] token fed at this step
    tokens: jax.Array
    logprobs: jax.Array
    done: jax.Array  # [batch] a stop token was emitted
    lengths: jax.Array  # [batch] tokens emitted, stop token included
    cache: KVCache | None


def _step_keys(row_keys: jax.Array, step: jax.Array) -> jax.Array:
    return jax.vmap(jax.random.fold_in, in_axes=(0, None))(row_keys, step)


def _row_keys(seed: jax.Array, row_ids: jax.Array) -> jax.Array:
    return jax.vmap(jax.random.fold_in, in_axes=(None, 0))(jax.random.key(seed), row_ids)


def _pick(logits: jax.Array, keys: jax.Array, plan: Plan) -> tuple[jax.Array, jax.Array]:
    """Sampled tokens [batch] and their log-probabilities under the model (temperature 1, unfiltered)."""
    token = plan.sampling.sample(logits, keys)
    logprob = jnp.take_along_axis(jax.nn.log_softmax(logits, axis=-1), token[:, None], axis=-1)[:, 0]
    return token, logprob


def _constrain_cache(cache: KVCache, plan: Plan) -> KVCache:
    return cache._replace(k=constrain(cache.k, plan.cache_sharding), v=constrain(cache.v, plan.cache_sharding))


def decode(model: Phi4, logits: jax.Array, cache: KVCache, row_keys: jax.Array, plan: Plan) -> Decoded:
    """Sample token 0 from `logits` [batch, vocab], then decode until max_new_tokens or every row stopped."""
    batch = logits.shape[0]
    stops = jnp.asarray(plan.stop_tokens or (-1,), jnp.int32)
    first, first_logprob = _pick(logits, _step_keys(row_keys, jnp.int32(0)), plan)
    columns = (batch, plan.max_new_tokens)
    start = Decoded(
        step=jnp.int32(1),
        last=first,
        tokens=jnp.full(columns, plan.pad_id, jnp.int32).at[:, 0].set(first),
        logprobs=jnp.zeros(columns, jnp.float32).at[:, 0].set(first_logprob),
        done=jnp.isin(first, stops),
        lengths=jnp.ones((batch,), jnp.int32),
        cache=cache,
    )

    def not_finished(s: Decoded) -> jax.Array:
        return (s.step < plan.max_new_tokens) & ~jnp.all(s.done)

    def one_token(s: Decoded) -> Decoded:
        logits, cache = decode_step(model, s.cache, s.last)
        token, logprob = _pick(logits, _step_keys(row_keys, s.step), plan)
        token, logprob = jnp.where(s.done, plan.pad_id, token), jnp.where(s.done, 0.0, logprob)
        return Decoded(
            step=s.step + 1,
            last=token,
            tokens=jax.lax.dynamic_update_slice_in_dim(s.tokens, token[:, None], s.step, axis=1),
            logprobs=jax.lax.dynamic_update_slice_in_dim(s.logprobs, logprob[:, None], s.step, axis=1),
            done=s.done | jnp.isin(token, stops),
            lengths=s.lengths + ~s.done,
            cache=_constrain_cache(cache, plan),
        )

    return jax.lax.while_loop(not_finished, one_token, start)._replace(cache=None)


# --------------------------------------------------------------------------------- the programs
@partial(jax.jit, static_argnames=("graphdef", "plan"))
def generate_program(graphdef, state, tokens, lengths, row_ids, seed, *, plan: Plan) -> Decoded:
    """Prefill left-padded prompts tokens [batch, L] (lengths [batch]) and decode every row."""
    model = nnx.merge(graphdef, state)
    with rows_sharded(plan.row_sharding):
        logits, cache = prefill(model, constrain(tokens, plan.row_sharding), lengths, plan.cache_len)
        return decode(model, logits, _constrain_cache(cache, plan), _row_keys(seed, row_ids), plan)


@partial(jax.jit, static_argnames=("graphdef", "plan"))
def continuations_program(graphdef, state, prefix, length, row_ids, seed, *, plan: Plan) -> Decoded:
    """Prefill one prefix [1, L] and decode len(row_ids) continuations from copies of its cache."""
    model = nnx.merge(graphdef, state)
    logits, cache = prefill(model, prefix, length, plan.cache_len)  # one row: replicated
    rows = row_ids.shape[0]

    def copies(x: jax.Array, axis: int) -> jax.Array:
        return jnp.repeat(x, rows, axis=axis)

    cache = KVCache(
        k=copies(cache.k, 1),
        v=copies(cache.v, 1),
        key_valid=copies(cache.key_valid, 0),
        positions=copies(cache.positions, 0),
        index=cache.index,
    )
    with rows_sharded(plan.row_sharding):
        return decode(model, copies(logits, 0), _constrain_cache(cache, plan), _row_keys(seed, row_ids), plan)

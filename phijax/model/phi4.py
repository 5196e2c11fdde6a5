"""The Phi-4 decoder (HF `Phi3ForCausalLM` architecture) in Flax NNX.

    token embedding
    N x [ RMSNorm → grouped-query self-attention with RoPE → residual
          RMSNorm → SwiGLU MLP → residual ]
    final RMSNorm → untied LM head → fp32 logits

No biases, no dropout. Every parameter carries logical axis names (`out_sharding` metadata) that
`phijax.parallel` maps to mesh axes through the config's rules table. The N decoder layers are stored
stacked along a leading `layers` axis and run under `jax.lax.scan`, so compile time does not grow
with depth and the checkpoint layout is the same whether or not the loop is unrolled.

Generation runs the same layers over a key/value cache (`Phi4.cached_hidden_states`, used by
`phijax.inference`); training never touches that path.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx
from jax.sharding import NamedSharding, PartitionSpec

from phijax.model.attention import Documents, attend, causal_attention, documents
from phijax.model.config import ModelConfig
from phijax.model.rope import apply_rope
from phijax.parallel.mesh import current_batch_sharding, shard_like_batch

INIT_STDDEV = 0.02  # HF's initializer_range for phi-3/phi-4
# One layer's key/value cache (k, v), each [batch, max_len, kv_heads, head_dim]; stacked over layers
# on a leading axis in `Phi4.cached_hidden_states`.
KVLayer = tuple[jax.Array, jax.Array]

# What a layer keeps for its backward pass (`model.remat`); None entries mean "no remat".
REMAT_POLICIES: dict[str, Callable | None] = {
    "none": None,
    "full": jax.checkpoint_policies.nothing_saveable,
    "dots": jax.checkpoint_policies.checkpoint_dots,
    "dots_no_batch": jax.checkpoint_policies.dots_with_no_batch_dims_saveable,
}


def _param(rngs: nnx.Rngs, shape: tuple[int, ...], axes: tuple[str, ...], dtype, init=None) -> nnx.Param:
    init = init or jax.nn.initializers.normal(INIT_STDDEV)
    return nnx.Param(init(rngs.params(), shape, dtype), out_sharding=axes, eager_sharding=False)


def _dtype(name: str):
    return jnp.dtype(name)


class RMSNorm(nnx.Module):
    """x / rms(x) * scale, computed in fp32; eps inside the square root."""

    def __init__(self, cfg: ModelConfig, *, rngs: nnx.Rngs):
        self.eps = cfg.rms_norm_eps
        self.scale = _param(rngs, (cfg.hidden_size,), ("norm",), _dtype(cfg.param_dtype), init=jax.nn.initializers.ones)

    def __call__(self, x: jax.Array) -> jax.Array:
        x32 = x.astype(jnp.float32)
        normed = x32 * jax.lax.rsqrt(jnp.mean(x32 * x32, axis=-1, keepdims=True) + self.eps)
        return (normed * self.scale[...].astype(jnp.float32)).astype(x.dtype)


class Attention(nnx.Module):
    """Grouped-query self-attention: `num_heads` query heads share `num_kv_heads` key/value heads."""

    def __init__(self, cfg: ModelConfig, *, rngs: nnx.Rngs):
        d, h, kv, hd = cfg.hidden_size, cfg.num_heads, cfg.num_kv_heads, cfg.head_dim
        pdt = _dtype(cfg.param_dtype)
        self.q = _param(rngs, (d, h, hd), ("embed", "heads", "head_dim"), pdt)
        self.k = _param(rngs, (d, kv, hd), ("embed", "kv_heads", "head_dim"), pdt)
        self.v = _param(rngs, (d, kv, hd), ("embed", "kv_heads", "head_dim"), pdt)
        self.o = _param(rngs, (h, hd, d), ("heads", "head_dim", "embed"), pdt)
        self.rope_theta = cfg.rope_theta
        self.implementation = cfg.attention

    def __call__(self, x: jax.Array, positions: jax.Array, docs: Documents) -> jax.Array:
        """x: [batch, seq, embed] → [batch, seq, embed]."""
        q, k, v = self._project(x, positions)
        out = causal_attention(q, k, v, docs, self.implementation)
        return self._output(out)

    def cached(
        self, x: jax.Array, positions: jax.Array, cache: KVLayer, start: jax.Array, key_valid: jax.Array
    ) -> tuple[jax.Array, KVLayer]:
        """Attention of new tokens over a key/value cache (generation).

        x: [batch, seq, embed], the tokens written at cache slots start..start+seq-1; cache k and v:
        [batch, max_len, kv_heads, head_dim] (kv heads, not expanded to query heads); key_valid:
        [batch, max_len], False for padding slots. A token attends to valid slots at or before its own.
        Returns the attention output [batch, seq, embed] and the cache with the new keys and values.
        """
        q, k, v = self._project(x, positions)
        k_cache = jax.lax.dynamic_update_slice_in_dim(cache[0], k.astype(cache[0].dtype), start, axis=1)
        v_cache = jax.lax.dynamic_update_slice_in_dim(cache[1], v.astype(cache[1].dtype), start, axis=1)
        slots = jnp.arange(k_cache.shape[1])
        query_slots = start + jnp.arange(x.shape[1])
        earlier = slots[None, :] <= query_slots[:, None]
        itself = slots[None, :] == query_slots[:, None]
        # A padding query sees its own slot, so no row of the mask is empty (an all-masked softmax row
        # may be NaN in some kernels and would reach valid queries through padding's values).
        mask = earlier[None, None] & (key_valid[:, None, None, :] | itself[None, None])
        # The mask is not causal in the kernel's sense (queries sit at an offset), so jax picks the kernel.
        out = attend(q, k_cache.astype(q.dtype), v_cache.astype(q.dtype), mask=mask, causal=False, implementation=None)
        return self._output(out), (k_cache, v_cache)

    def _project(self, x: jax.Array, positions: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
        """Queries [batch, seq, heads, head_dim], keys and values [batch, seq, kv_heads, head_dim], roped."""
        dt = x.dtype
        q = jnp.einsum("bsd,dhk->bshk", x, self.q[...].astype(dt))
        k = jnp.einsum("bsd,dhk->bshk", x, self.k[...].astype(dt))
        v = jnp.einsum("bsd,dhk->bshk", x, self.v[...].astype(dt))
        return apply_rope(q, positions, self.rope_theta), apply_rope(k, positions, self.rope_theta), v

    def _output(self, out: jax.Array) -> jax.Array:
        return jnp.einsum("bshk,hkd->bsd", out, self.o[...].astype(out.dtype))


class MLP(nnx.Module):
    """SwiGLU: down(silu(gate(x)) * up(x))."""

    def __init__(self, cfg: ModelConfig, *, rngs: nnx.Rngs):
        d, f, pdt = cfg.hidden_size, cfg.intermediate_size, _dtype(cfg.param_dtype)
        self.gate = _param(rngs, (d, f), ("embed", "mlp"), pdt)
        self.up = _param(rngs, (d, f), ("embed", "mlp"), pdt)
        self.down = _param(rngs, (f, d), ("mlp", "embed"), pdt)

    def __call__(self, x: jax.Array) -> jax.Array:
        dt = x.dtype
        hidden = jax.nn.silu(x @ self.gate[...].astype(dt)) * (x @ self.up[...].astype(dt))
        return hidden @ self.down[...].astype(dt)


class DecoderLayer(nnx.Module):
    """Pre-norm residual block: attention then MLP."""

    def __init__(self, cfg: ModelConfig, *, rngs: nnx.Rngs):
        self.attn_norm = RMSNorm(cfg, rngs=rngs)
        self.attn = Attention(cfg, rngs=rngs)
        self.mlp_norm = RMSNorm(cfg, rngs=rngs)
        self.mlp = MLP(cfg, rngs=rngs)

    def __call__(self, x: jax.Array, positions: jax.Array, docs: Documents) -> jax.Array:
        x = x + self.attn(self.attn_norm(x), positions, docs)
        return x + self.mlp(self.mlp_norm(x))

    def cached(
        self, x: jax.Array, positions: jax.Array, cache: KVLayer, start: jax.Array, key_valid: jax.Array
    ) -> tuple[jax.Array, KVLayer]:
        """The block over a key/value cache: see `Attention.cached`."""
        attended, cache = self.attn.cached(self.attn_norm(x), positions, cache, start, key_valid)
        x = x + attended
        return x + self.mlp(self.mlp_norm(x)), cache


class Phi4(nnx.Module):
    """The Phi-4 causal language model.

    Called as `model(input_ids, positions=None, segment_ids=None)` → fp32 logits [batch, seq, vocab].
    `positions` default to 0..seq-1; `segment_ids` (0 = padding) keep packed documents apart.
    """

    def __init__(self, cfg: ModelConfig, *, rngs: nnx.Rngs):
        self.cfg = cfg
        pdt = _dtype(cfg.param_dtype)
        self.embed = _param(rngs, (cfg.vocab_size, cfg.hidden_size), ("vocab", "embed"), pdt)

        @nnx.split_rngs(splits=cfg.num_layers)
        @nnx.vmap(in_axes=(0,), out_axes=0, transform_metadata={nnx.PARTITION_NAME: "layers"})
        def stacked_layers(rngs: nnx.Rngs) -> DecoderLayer:
            return DecoderLayer(cfg, rngs=rngs)

        self.layers = stacked_layers(rngs)
        self.final_norm = RMSNorm(cfg, rngs=rngs)
        self.lm_head = _param(rngs, (cfg.hidden_size, cfg.vocab_size), ("embed", "vocab"), pdt)

    def __call__(
        self,
        input_ids: jax.Array,
        positions: jax.Array | None = None,
        segment_ids: jax.Array | None = None,
    ) -> jax.Array:
        return self.logits(self.hidden_states(input_ids, positions, segment_ids))

    def hidden_states(
        self,
        input_ids: jax.Array,
        positions: jax.Array | None = None,
        segment_ids: jax.Array | None = None,
    ) -> jax.Array:
        """Final-normed hidden states [batch, seq, embed] in the compute dtype (before the LM head)."""
        batch, seq = input_ids.shape
        if positions is None:
            positions = jnp.broadcast_to(jnp.arange(seq, dtype=jnp.int32), (batch, seq))
        docs = documents(segment_ids, self.cfg.attention)
        x = self._run_layers(self._embed_tokens(input_ids), positions, docs)
        return self.final_norm(x)

    def _embed_tokens(self, input_ids: jax.Array) -> jax.Array:
        """Token embeddings [batch, seq, embed] in the compute dtype, pinned to the batch sharding.

        Inside `batch_sharded_activations` (training) the table is first made whole along `embed`
        (gathered over fsdp, as FSDP gathers every weight before use). The lookup's gradient is a
        scatter-add of the batch-sharded [batch, seq, embed] cotangent into the table: into a table
        split along `embed` XLA can only get there by replicating the cotangent on every device
        ("[SPMD] Involuntary full rematerialization" on meshes with data and fsdp both above 1); into a
        whole-`embed` table each device adds its own rows, and the sum is reduce-scattered to the table's
        sharding. The `vocab` dimension keeps whatever sharding it has.
        """
        table = self.embed[...].astype(_dtype(self.cfg.compute_dtype))
        sharding = current_batch_sharding()
        if sharding is not None:
            whole_embed = NamedSharding(sharding.mesh, PartitionSpec(PartitionSpec.UNCONSTRAINED, None))
            table = jax.lax.with_sharding_constraint(table, whole_embed)
        return shard_like_batch(table[input_ids])

    def logits(self, hidden: jax.Array) -> jax.Array:
        """[batch, seq, embed] → fp32 logits [batch, seq, vocab] (fp32 accumulation)."""
        w = self.lm_head[...].astype(hidden.dtype)
        return jnp.einsum("bsd,dv->bsv", hidden, w, preferred_element_type=jnp.float32)

    def _run_layers(self, x: jax.Array, positions: jax.Array, docs: Documents) -> jax.Array:
        graphdef, params = nnx.split(self.layers)

        def one_layer(h: jax.Array, layer_params) -> tuple[jax.Array, None]:
            return shard_like_batch(nnx.merge(graphdef, layer_params)(h, positions, docs)), None

        policy = REMAT_POLICIES[self.cfg.remat]
        if self.cfg.remat != "none":
            one_layer = jax.checkpoint(one_layer, policy=policy, prevent_cse=not self.cfg.scan_layers)
        if self.cfg.scan_layers:
            x, _ = jax.lax.scan(one_layer, x, params)
            return x
        for i in range(self.cfg.num_layers):
            x, _ = one_layer(x, jax.tree.map(lambda a: a[i], params))
        return x

    def cached_hidden_states(
        self,
        input_ids: jax.Array,
        positions: jax.Array,
        cache: KVLayer,
        start: jax.Array,
        key_valid: jax.Array,
    ) -> tuple[jax.Array, KVLayer]:
        """Generation's forward pass: new tokens over a key/value cache of every layer.

        input_ids, positions: [batch, seq], written at cache slots start..start+seq-1 (a prompt at
        prefill, one token per decode step); cache k and v: [layers, batch, max_len, kv_heads,
        head_dim]; key_valid: [batch, max_len]. Returns final-normed hidden states [batch, seq, embed]
        and the updated cache. Layers are always scanned (no remat: nothing is differentiated).
        """
        graphdef, params = nnx.split(self.layers)
        x = shard_like_batch(self.embed[...].astype(_dtype(self.cfg.compute_dtype))[input_ids])

        def one_layer(h: jax.Array, layer: tuple[Any, jax.Array, jax.Array]) -> tuple[jax.Array, KVLayer]:
            layer_params, k, v = layer
            h, cache = nnx.merge(graphdef, layer_params).cached(h, positions, (k, v), start, key_valid)
            return shard_like_batch(h), cache

        x, cache = jax.lax.scan(one_layer, x, (params, *cache))
        return self.final_norm(x), cache

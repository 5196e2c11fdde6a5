"""The Phi-4 decoder (HF `Phi3ForCausalLM` architecture) in Flax NNX.

    token embedding
    N x [ RMSNorm → grouped-query self-attention with RoPE → residual
          RMSNorm → SwiGLU MLP → residual ]
    final RMSNorm → untied LM head → fp32 logits

No biases, no dropout. Every parameter carries logical axis names (`out_sharding` metadata) that
`phijax.parallel` maps to mesh axes through the config's rules table. The N decoder layers are stored
stacked along a leading `layers` axis and run under `jax.lax.scan`, so compile time does not grow
with depth and the checkpoint layout is the same whether or not the loop is unrolled.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
from flax import nnx

from phijax.config import ModelConfig
from phijax.model.attention import attend, document_mask
from phijax.model.rope import apply_rope

INIT_STDDEV = 0.02  # HF's initializer_range for phi-3/phi-4

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
        self.scale = _param(rngs, (cfg.hidden_size,), ("norm",), _dtype(cfg.param_dtype),
                            init=jax.nn.initializers.ones)

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

    def __call__(self, x: jax.Array, positions: jax.Array, mask: jax.Array | None) -> jax.Array:
        """x: [batch, seq, embed] → [batch, seq, embed]."""
        dt = x.dtype
        q = jnp.einsum("bsd,dhk->bshk", x, self.q[...].astype(dt))
        k = jnp.einsum("bsd,dhk->bshk", x, self.k[...].astype(dt))
        v = jnp.einsum("bsd,dhk->bshk", x, self.v[...].astype(dt))
        q = apply_rope(q, positions, self.rope_theta)
        k = apply_rope(k, positions, self.rope_theta)
        out = attend(q, k, v, mask=mask, causal=True, implementation=self.implementation)
        return jnp.einsum("bshk,hkd->bsd", out, self.o[...].astype(dt))


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

    def __call__(self, x: jax.Array, positions: jax.Array, mask: jax.Array | None) -> jax.Array:
        x = x + self.attn(self.attn_norm(x), positions, mask)
        return x + self.mlp(self.mlp_norm(x))


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
        mask = None if segment_ids is None else document_mask(segment_ids, segment_ids)
        x = self.embed[...].astype(_dtype(self.cfg.compute_dtype))[input_ids]
        x = self._run_layers(x, positions, mask)
        return self.final_norm(x)

    def logits(self, hidden: jax.Array) -> jax.Array:
        """[batch, seq, embed] → fp32 logits [batch, seq, vocab] (fp32 accumulation)."""
        w = self.lm_head[...].astype(hidden.dtype)
        return jnp.einsum("bsd,dv->bsv", hidden, w, preferred_element_type=jnp.float32)

    def _run_layers(self, x: jax.Array, positions: jax.Array, mask: jax.Array | None) -> jax.Array:
        graphdef, params = nnx.split(self.layers)

        def one_layer(h: jax.Array, layer_params) -> tuple[jax.Array, None]:
            return nnx.merge(graphdef, layer_params)(h, positions, mask), None

        policy = REMAT_POLICIES[self.cfg.remat]
        if self.cfg.remat != "none":
            one_layer = jax.checkpoint(one_layer, policy=policy, prevent_cse=not self.cfg.scan_layers)
        if self.cfg.scan_layers:
            x, _ = jax.lax.scan(one_layer, x, params)
            return x
        for i in range(self.cfg.num_layers):
            x, _ = one_layer(x, jax.tree.map(lambda a: a[i], params))
        return x

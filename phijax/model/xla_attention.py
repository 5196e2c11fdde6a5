"""Causal grouped-query attention for the portable XLA path, with a hand-written backward pass.

    scores = (q / √head_dim)·kᵀ, masked         fp32, [batch, kv_heads, q_len·group, kv_len]
    p      = softmax(scores)                    kept only as its log-sum-exp [batch, kv_heads, q_len·group]
    out    = p·v

Heads-major, grouped: the `group` query heads that share a key/value head are interleaved along the
query rows beside it (row t·group + g is position t of query head kv·group + g), so every product is
one batched matmul over (batch, kv_heads) with its contraction on the minor dimension, K and V are
read as they are and never repeated per query head, and XLA needs no transpose of a score-sized
array. The mask (causality, and document boundaries from segment ids) is made from iotas and
compares inside the fusions that read the scores, never stored; the 1/√head_dim scale is applied to
q (and to the gradient of q), not to the scores, so no fusion reads a scale broadcast to their shape.

Causal skipping: the queries are cut into up to `MAX_QUERY_BLOCKS` blocks of positions, and block i
is scored only against the keys up to its last position, so the masked upper triangle is mostly never
computed: (n + 1) / 2n of the full score work for n blocks (56% at 8).

Autodiff of softmax attention (`jax.nn.dot_product_attention`) differentiates the select, the
max-subtraction and the normalisation one by one and transposes score-sized arrays between them;
`_attention_bwd` instead recomputes p from the saved log-sum-exp and applies the closed form
dS = p ⊙ (dP - rowsum(dO ⊙ O)), the flash-attention backward (Dao et al. 2022) with the tiling only
along queries. Measurements: docs/launching.md § Throughput.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

# What a masked score becomes: exp underflows to exactly 0, and it stays finite in fp32 arithmetic
# (jax.nn.dot_product_attention uses the same -0.7·max).
MASKED = -0.7 * float(jnp.finfo(jnp.float32).max)
# More blocks skip more of the triangle but add ops (a dozen per block, forward and backward). The
# `tiny` train step on CPU (one process, CPU ms a step): 1 block 120, 2 106, 4 103, 8 100; 16 within 2%
# of 8, 32 slower.
MAX_QUERY_BLOCKS = 8


@jax.custom_vjp
def xla_causal_attention(q: jax.Array, k: jax.Array, v: jax.Array, segment_ids: jax.Array | None) -> jax.Array:
    """Causal attention of q over k and v within documents.

    q: [batch, seq, heads, head_dim]; k, v: [batch, seq, kv_heads, head_dim] (heads a multiple of
    kv_heads); segment_ids: [batch, seq] int (a query sees keys of its own segment only) or None
    (one document a row). Returns q's shape and dtype. Scores and softmax are fp32; the
    probabilities enter p·v in the input dtype, as in `jax.nn.dot_product_attention`.
    """
    return _attention_fwd(q, k, v, segment_ids)[0]


def _heads_major(x: jax.Array, kv_heads: int) -> jax.Array:
    """[batch, seq, heads, head_dim] → [batch, kv_heads, seq·group, head_dim], row t·group + g."""
    batch, seq, heads, head_dim = x.shape
    grouped = x.reshape(batch, seq, kv_heads, heads // kv_heads, head_dim)
    return grouped.transpose(0, 2, 1, 3, 4).reshape(batch, kv_heads, -1, head_dim)


def _seq_major(x: jax.Array, seq: int) -> jax.Array:
    """The inverse of `_heads_major`: [batch, kv_heads, seq·group, head_dim] → [batch, seq, heads, head_dim]."""
    batch, kv_heads, rows, head_dim = x.shape
    grouped = x.reshape(batch, kv_heads, seq, rows // seq, head_dim)
    return grouped.transpose(0, 2, 1, 3, 4).reshape(batch, seq, -1, head_dim)


def _query_blocks(seq: int) -> list[tuple[int, int]]:
    """(first position, end position) of each query block: the most blocks ≤ MAX_QUERY_BLOCKS dividing seq."""
    count = max(n for n in range(1, MAX_QUERY_BLOCKS + 1) if seq % n == 0)
    size = seq // count
    return [(i * size, (i + 1) * size) for i in range(count)]


def _block_scores(q: jax.Array, k: jax.Array, start: int, group: int, segment_ids: jax.Array | None) -> jax.Array:
    """Masked fp32 scores [batch, kv_heads, rows, keys] of the query rows of positions start.. (q
    heads-major and scaled, `group` rows a position) against the first `keys` keys."""
    keys = k.shape[2]
    scores = jnp.einsum("bkqh,bksh->bkqs", q, k, preferred_element_type=jnp.float32)
    query_positions = start + jnp.arange(q.shape[2]) // group
    allowed = (query_positions[:, None] >= jnp.arange(keys)[None, :])[None, None]
    if segment_ids is not None:
        query_segments = jnp.repeat(segment_ids[:, start:keys], group, axis=1)
        allowed = allowed & (query_segments[:, None, :, None] == segment_ids[:, None, None, :keys])
    return jnp.where(allowed, scores, MASKED)


def _attention_fwd(q, k, v, segment_ids):
    seq, group = q.shape[1], q.shape[2] // k.shape[2]
    q_heads = _heads_major(q, k.shape[2]) * jnp.asarray(q.shape[-1] ** -0.5, q.dtype)
    k_heads, v_heads = k.transpose(0, 2, 1, 3), v.transpose(0, 2, 1, 3)
    outs, lses = [], []
    for start, end in _query_blocks(seq):
        scores = _block_scores(
            q_heads[:, :, start * group : end * group], k_heads[:, :, :end], start, group, segment_ids
        )
        lse = jax.nn.logsumexp(scores, axis=-1)
        p = jnp.exp(scores - lse[..., None]).astype(v.dtype)
        outs.append(jnp.einsum("bkqs,bksh->bkqh", p, v_heads[:, :, :end], preferred_element_type=jnp.float32))
        lses.append(lse)
    out = jnp.concatenate(outs, axis=2).astype(q.dtype)
    return _seq_major(out, seq), (q_heads, k_heads, v_heads, segment_ids, out, jnp.concatenate(lses, axis=2))


def _attention_bwd(residuals, d_out):
    """Gradients of q, k, v (segment ids are data: none), with p recomputed from the log-sum-exp."""
    q_heads, k_heads, v_heads, segment_ids, out, lse = residuals
    seq, dtype = k_heads.shape[2], q_heads.dtype
    group = q_heads.shape[2] // seq
    d_out = _heads_major(d_out, k_heads.shape[1])
    row = jnp.sum(d_out.astype(jnp.float32) * out.astype(jnp.float32), axis=-1)  # rowsum(dO ⊙ O) = rowsum(dP ⊙ p)
    d_q, d_k, d_v = [], jnp.zeros(k_heads.shape, jnp.float32), jnp.zeros(v_heads.shape, jnp.float32)
    for start, end in _query_blocks(seq):
        rows = slice(start * group, end * group)
        q_block, d_out_block = q_heads[:, :, rows], d_out[:, :, rows]
        p = jnp.exp(_block_scores(q_block, k_heads[:, :, :end], start, group, segment_ids) - lse[:, :, rows, None])
        d_v_block = jnp.einsum("bkqs,bkqh->bksh", p.astype(dtype), d_out_block, preferred_element_type=jnp.float32)
        d_p = jnp.einsum("bkqh,bksh->bkqs", d_out_block, v_heads[:, :, :end], preferred_element_type=jnp.float32)
        d_scores = (p * (d_p - row[:, :, rows, None])).astype(dtype)
        d_q.append(jnp.einsum("bkqs,bksh->bkqh", d_scores, k_heads[:, :, :end], preferred_element_type=jnp.float32))
        d_k_block = jnp.einsum("bkqs,bkqh->bksh", d_scores, q_block, preferred_element_type=jnp.float32)
        d_k, d_v = d_k.at[:, :, :end].add(d_k_block), d_v.at[:, :, :end].add(d_v_block)
    d_q = _seq_major(jnp.concatenate(d_q, axis=2) * q_heads.shape[-1] ** -0.5, seq)
    return d_q.astype(dtype), d_k.transpose(0, 2, 1, 3).astype(dtype), d_v.transpose(0, 2, 1, 3).astype(dtype), None


xla_causal_attention.defvjp(_attention_fwd, _attention_bwd)

"""Attention masks and the attention kernel call.

All attention goes through `jax.nn.dot_product_attention`, which handles grouped-query attention
natively (N query heads over K key/value heads) and dispatches to cuDNN flash attention on GPU when
`implementation="cudnn"`. The mask is the conjunction of causality and document identity, so packed
documents never attend across their boundaries.
"""

from __future__ import annotations

import jax


def document_mask(query_segment_ids: jax.Array, key_segment_ids: jax.Array) -> jax.Array:
    """True where a query and a key belong to the same packed document.

    query_segment_ids: [batch, q_len]; key_segment_ids: [batch, kv_len] → [batch, 1, q_len, kv_len].
    """
    return (query_segment_ids[:, :, None] == key_segment_ids[:, None, :])[:, None]


def attend(
    q: jax.Array,
    k: jax.Array,
    v: jax.Array,
    *,
    mask: jax.Array | None,
    causal: bool,
    implementation: str,
) -> jax.Array:
    """Scaled dot-product attention.

    q: [batch, q_len, heads, head_dim]; k, v: [batch, kv_len, kv_heads, head_dim];
    mask: broadcastable to [batch, heads, q_len, kv_len], True = attend. Returns q's shape.
    Softmax statistics are fp32 inside the kernel whatever the input dtype.
    """
    return jax.nn.dot_product_attention(
        q, k, v, mask=mask, is_causal=causal, implementation=implementation
    )


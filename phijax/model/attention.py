"""Attention masks and the attention kernel call.

Training attention takes one of three kernels: the portable XLA one (`implementation="xla"`,
`phijax.model.xla_attention`, grouped-query attention with a hand-written backward pass),
`jax.nn.dot_product_attention`'s cuDNN flash attention on GPU (`"cudnn"`), or the Pallas splash
kernel on TPU (`"splash"`, `phijax.model.splash`). Generation's cached attention goes through
`jax.nn.dot_product_attention` (`attend`). The mask is the conjunction of causality and document
identity, so packed documents never attend across their boundaries.
"""

from __future__ import annotations

from typing import NamedTuple

import jax

from phijax.model.splash import splash_attention
from phijax.model.xla_attention import xla_causal_attention


class Documents(NamedTuple):
    """What keeps packed documents apart, in the form the kernel takes: a dense mask [batch, 1, seq,
    seq] for cudnn, segment ids [batch, seq] for splash and xla (which compare them where they read
    the scores instead of reading a stored mask). Both None: one document a row, causal attention only.

    Built once per forward pass (`documents`), outside the scan over layers, so no layer stores its
    own copy of the mask for the backward pass.
    """

    mask: jax.Array | None = None
    segment_ids: jax.Array | None = None


def documents(segment_ids: jax.Array | None, implementation: str) -> Documents:
    """The `Documents` form of `segment_ids` that `implementation` reads."""
    if segment_ids is None:
        return Documents()
    if implementation in ("splash", "xla"):
        return Documents(segment_ids=segment_ids)
    return Documents(mask=document_mask(segment_ids, segment_ids))


def causal_attention(q: jax.Array, k: jax.Array, v: jax.Array, docs: Documents, implementation: str) -> jax.Array:
    """Causal self-attention within documents; shapes as in `attend`."""
    if implementation == "splash":
        return splash_attention(q, k, v, docs.segment_ids)
    if implementation == "xla":
        return xla_causal_attention(q, k, v, docs.segment_ids)
    return attend(q, k, v, mask=docs.mask, causal=True, implementation=implementation)


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
    return jax.nn.dot_product_attention(q, k, v, mask=mask, is_causal=causal, implementation=implementation)

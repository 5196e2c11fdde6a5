"""Rotary position embedding (RoPE) over the full head dimension, in HF's half-split layout.

The head dimension is split into two halves (x1, x2) that rotate as the real and imaginary parts of
head_dim/2 complex numbers, matching `transformers`' `rotate_half`, so converted checkpoints need no
permutation of the q/k projections.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def inverse_frequencies(head_dim: int, theta: float) -> jax.Array:
    """Angular frequency of each rotated pair: theta^(-2i/head_dim), shape [head_dim/2], fp32."""
    exponents = jnp.arange(0, head_dim, 2, dtype=jnp.float32) / head_dim
    return 1.0 / (theta**exponents)


def apply_rope(x: jax.Array, positions: jax.Array, theta: float) -> jax.Array:
    """Rotate queries or keys by their positions.

    x: [batch, seq, heads, head_dim]; positions: [batch, seq] int. Angles are computed in fp32 (bf16
    angles lose whole radians at 16K positions); the result has x's dtype.
    """
    angles = positions[..., None].astype(jnp.float32) * inverse_frequencies(x.shape[-1], theta)
    cos = jnp.cos(angles)[:, :, None, :]  # [batch, seq, 1, head_dim/2]
    sin = jnp.sin(angles)[:, :, None, :]
    x1, x2 = jnp.split(x.astype(jnp.float32), 2, axis=-1)
    rotated = jnp.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)
    return rotated.astype(x.dtype)

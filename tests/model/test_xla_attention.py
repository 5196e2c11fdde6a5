"""The XLA path's attention kernel and its hand-written backward pass against jax autodiff of
`jax.nn.dot_product_attention` (the implementation it replaced) on the same inputs."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from phijax.model.attention import document_mask
from phijax.model.xla_attention import xla_causal_attention


def inputs(batch=2, seq=32, heads=8, kv_heads=2, head_dim=16, dtype=jnp.float32, seed=0):
    """q [batch, seq, heads, head_dim], k and v [batch, seq, kv_heads, head_dim], and a random cotangent."""
    rng = np.random.default_rng(seed)
    shapes = [(batch, seq, heads, head_dim), (batch, seq, kv_heads, head_dim), (batch, seq, kv_heads, head_dim)]
    q, k, v, d_out = (jnp.asarray(rng.normal(size=s), dtype) for s in [*shapes, shapes[0]])
    return q, k, v, d_out


def packed_segments(batch=2, seq=32):
    """Row 0: documents of 10, 15 and 5 tokens then 2 of padding (segment 0); row 1: one document."""
    row0 = np.repeat([1, 2, 3, 0], [10, 15, 5, 2])
    return jnp.asarray(np.stack([row0, np.ones(seq, int)])[:batch], jnp.int32)


def reference(q, k, v, segment_ids):
    mask = None if segment_ids is None else document_mask(segment_ids, segment_ids)
    return jax.nn.dot_product_attention(q, k, v, mask=mask, is_causal=True, implementation="xla")


def value_and_grads(attention, q, k, v, d_out, segment_ids):
    """(output, gradients of <output, d_out> for q, k, v): the vector-Jacobian product of the kernel."""
    out, vjp = jax.vjp(lambda q, k, v: attention(q, k, v, segment_ids), q, k, v)
    return out, vjp(d_out)


@pytest.mark.parametrize("packed", [False, True], ids=["causal", "packed documents"])
@pytest.mark.parametrize("kv_heads", [1, 2, 8], ids=["multi-query", "grouped", "multi-head"])
def test_output_and_gradients_match_autodiff_of_dot_product_attention(packed, kv_heads):
    q, k, v, d_out = inputs(kv_heads=kv_heads)
    segments = packed_segments() if packed else None
    want_out, want_grads = value_and_grads(reference, q, k, v, d_out, segments)
    got_out, got_grads = jax.jit(value_and_grads, static_argnums=0)(xla_causal_attention, q, k, v, d_out, segments)
    np.testing.assert_allclose(got_out, want_out, atol=2e-6, rtol=1e-5)
    for name, got, want in zip("qkv", got_grads, want_grads):
        np.testing.assert_allclose(got, want, atol=2e-5, rtol=1e-5, err_msg=f"d{name}")


def test_no_query_sees_a_later_key_or_another_document():
    """Perturbing a key's value changes only the outputs of later-or-equal queries of its document."""
    q, k, v, _ = inputs()
    segments = packed_segments()
    base = xla_causal_attention(q, k, v, segments)
    moved = xla_causal_attention(q, k, v.at[0, 12].add(5.0), segments)  # position 12: document 2 (10..24)
    changed = np.any(np.abs(np.asarray(moved - base)) > 0, axis=(2, 3))
    expected = np.zeros_like(changed)
    expected[0, 12:25] = True
    np.testing.assert_array_equal(changed, expected)


def test_bfloat16_inputs_keep_their_dtype_and_stay_close_to_fp32():
    q, k, v, d_out = inputs(dtype=jnp.bfloat16)
    out, grads = value_and_grads(xla_causal_attention, q, k, v, d_out, None)
    assert out.dtype == jnp.bfloat16 and all(g.dtype == jnp.bfloat16 for g in grads)
    as32 = [x.astype(jnp.float32) for x in (q, k, v, d_out)]
    want_out, want_grads = value_and_grads(reference, *as32, None)
    np.testing.assert_allclose(out.astype(jnp.float32), want_out, atol=3e-2, rtol=3e-2)
    for got, want in zip(grads, want_grads):
        np.testing.assert_allclose(got.astype(jnp.float32), want, atol=6e-2, rtol=6e-2)

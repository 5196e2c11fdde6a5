"""The chunked LM-head losses against numpy's full log-softmax (the closed form)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from phijax.train.losses import completion_logps, next_token_loss


def reference_logps(hidden, lm_head, targets, mask):
    logits = hidden.astype(np.float64) @ lm_head.astype(np.float64)
    logits -= logits.max(-1, keepdims=True)
    logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    return (np.take_along_axis(logp, targets[..., None], -1)[..., 0] * mask).sum(-1)


@pytest.fixture
def batch():
    rng = np.random.RandomState(0)
    hidden = rng.randn(3, 12, 16).astype(np.float32)
    lm_head = rng.randn(16, 70).astype(np.float32)
    targets = rng.randint(0, 70, (3, 12))
    mask = (rng.rand(3, 12) > 0.3).astype(np.float32)
    return hidden, lm_head, targets, mask


@pytest.mark.parametrize("chunk", [1, 4, 5, 12, 1024])  # 5 does not divide 12: falls back to 4
def test_chunked_losses_equal_the_full_log_softmax(batch, chunk):
    hidden, lm_head, targets, mask = batch
    expected = reference_logps(hidden, lm_head, targets, mask)
    got = completion_logps(*map(jnp.asarray, batch), chunk=chunk)
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    total, count = next_token_loss(*map(jnp.asarray, batch), chunk=chunk)
    np.testing.assert_allclose(total, -expected.sum(), rtol=1e-5)
    assert count == mask.sum()


def test_chunked_gradient_equals_unchunked_gradient(batch):
    hidden, lm_head, targets, mask = map(jnp.asarray, batch)

    def loss(w, chunk):
        return next_token_loss(hidden, w, targets, mask, chunk)[0]

    np.testing.assert_allclose(jax.grad(loss)(lm_head, 2), jax.grad(loss)(lm_head, 12), rtol=1e-5, atol=1e-6)


def reference_gradients(hidden, lm_head, targets, mask):
    """Closed form of d(-sum of masked log p(target)): dlogits = (softmax - one-hot) * mask."""
    logits = hidden.astype(np.float64) @ lm_head.astype(np.float64)
    p = np.exp(logits - logits.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    d_logits = (p - np.eye(lm_head.shape[1])[targets]) * mask[..., None]
    return d_logits @ lm_head.T.astype(np.float64), np.einsum("bsd,bsv->dv", hidden, d_logits)


@pytest.mark.parametrize("chunk", [1, 4, 12])
def test_next_token_loss_gradients_are_the_closed_form_scaled_by_the_cotangent(batch, chunk):
    hidden, lm_head, targets, mask = batch
    want_hidden, want_head = reference_gradients(hidden, lm_head, targets, mask)

    def scaled_loss(h, w):  # a cotangent other than 1 reaches the gradients made in the forward pass
        return 2.5 * next_token_loss(h, w, jnp.asarray(targets), jnp.asarray(mask), chunk)[0]

    got_hidden, got_head = jax.jit(jax.grad(scaled_loss, argnums=(0, 1)))(jnp.asarray(hidden), jnp.asarray(lm_head))
    np.testing.assert_allclose(got_hidden, 2.5 * want_hidden, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(got_head, 2.5 * want_head, rtol=1e-4, atol=1e-6)


def test_bf16_next_token_loss_gradients_stay_near_fp32(batch):
    hidden, lm_head, targets, mask = map(jnp.asarray, batch)

    def grads(h):
        return jax.grad(lambda h, w: next_token_loss(h, w, targets, mask, 4)[0], argnums=(0, 1))(h, lm_head)

    g16, g32 = grads(hidden.astype(jnp.bfloat16)), grads(hidden)
    assert g16[0].dtype == jnp.bfloat16 and g16[1].dtype == jnp.float32
    for low, full in zip(g16, g32):
        assert float(jnp.abs(low.astype(jnp.float32) - full).max()) < 0.02 * float(jnp.abs(full).max())

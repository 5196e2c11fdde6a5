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

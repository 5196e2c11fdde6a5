"""cuDNN flash attention against the XLA path, on a GPU (skipped elsewhere).

These run only where jax's default backend is a GPU (`JAX_PLATFORMS=cuda python -m pytest tests/gpu`,
as `tools/gpu_suite.sh check` does); CI has no GPU. They pin down what `model.attention=cudnn` needs
before any GPU throughput figure is trusted: the same outputs and gradients as XLA's attention at
Phi-4's head layout (40 query heads over 10 key/value heads, head_dim 128), with and without the
packed-document mask, and the same loss through the whole model.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from phijax.model.attention import attend, document_mask
from phijax.train.config import load_train_job

pytestmark = pytest.mark.skipif(jax.default_backend() != "gpu", reason="needs a GPU (cuDNN)")

BATCH, SEQ, HEADS, KV_HEADS, HEAD_DIM = 2, 512, 40, 10, 128


def _qkv(seed: int = 0) -> tuple[jax.Array, jax.Array, jax.Array]:
    kq, kk, kv = jax.random.split(jax.random.key(seed), 3)
    q = jax.random.normal(kq, (BATCH, SEQ, HEADS, HEAD_DIM), jnp.bfloat16)
    k = jax.random.normal(kk, (BATCH, SEQ, KV_HEADS, HEAD_DIM), jnp.bfloat16)
    v = jax.random.normal(kv, (BATCH, SEQ, KV_HEADS, HEAD_DIM), jnp.bfloat16)
    return q, k, v


def _packed_mask() -> jax.Array:
    """Row 0: documents of 100, 300 and 112 tokens; row 1: one document."""
    row0 = np.repeat([1, 2, 3], [100, 300, 112])
    segments = jnp.asarray(np.stack([row0, np.ones(SEQ, int)]), jnp.int32)
    return document_mask(segments, segments)


def _loss_and_grads(implementation: str, mask: jax.Array | None):
    def loss(q, k, v):
        out = attend(q, k, v, mask=mask, causal=True, implementation=implementation)
        return jnp.sum(out.astype(jnp.float32) * jnp.linspace(-1, 1, out.shape[-1]))

    return jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2)))(*_qkv())


@pytest.mark.parametrize("packed", [False, True], ids=["causal", "packed-documents"])
def test_cudnn_matches_xla_outputs_and_gradients(packed):
    mask = _packed_mask() if packed else None
    out_cudnn = attend(*_qkv(), mask=mask, causal=True, implementation="cudnn")
    out_xla = attend(*_qkv(), mask=mask, causal=True, implementation="xla")
    np.testing.assert_allclose(np.asarray(out_cudnn, np.float32), np.asarray(out_xla, np.float32), atol=2e-2, rtol=2e-2)
    (loss_c, grads_c), (loss_x, grads_x) = _loss_and_grads("cudnn", mask), _loss_and_grads("xla", mask)
    np.testing.assert_allclose(float(loss_c), float(loss_x), rtol=1e-2, atol=1e-1)
    for name, gc, gx in zip("qkv", grads_c, grads_x):
        gc, gx = np.asarray(gc, np.float32), np.asarray(gx, np.float32)
        scale = np.abs(gx).max()
        assert np.abs(gc - gx).max() <= 2e-2 * scale, f"d{name}: cuDNN and XLA gradients differ"


def test_a_bf16_model_loss_is_the_same_with_cudnn_and_xla_attention():
    from flax import nnx

    from phijax.model.phi4 import Phi4

    def loss(attention: str) -> float:
        cfg = load_train_job(
            [],
            ["model.preset=tiny", "model.head_dim=64", "model.compute_dtype=bfloat16", f"model.attention={attention}"],
        ).model
        model = Phi4(cfg, rngs=nnx.Rngs(0))
        ids = jax.random.randint(jax.random.key(1), (2, 256), 3, cfg.vocab_size)
        segments = jnp.asarray(np.stack([np.repeat([1, 2], 128), np.ones(256, int)]), jnp.int32)
        logits = model(ids, segment_ids=segments)
        return float(jnp.mean(jax.nn.logsumexp(logits, -1) - jnp.take_along_axis(logits, ids[..., None], -1)[..., 0]))

    assert abs(loss("cudnn") - loss("xla")) < 2e-2

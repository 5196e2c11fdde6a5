"""Model behaviour: packed documents, positions, scan vs unrolled, remat, compute dtype."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from phijax.model.config import preset_config
from phijax.model.phi4 import Phi4


def tiny_model(**overrides):
    return Phi4(preset_config("tiny", **overrides), rngs=nnx.Rngs(0))


def test_packed_documents_match_each_document_run_alone():
    model = tiny_model()
    rng = np.random.RandomState(0)
    lengths = [5, 9, 3]
    docs = [rng.randint(3, 1024, n) for n in lengths]
    ids = np.concatenate(docs + [np.zeros(3, int)])[None]  # 3 padding tokens at the end
    segments = np.concatenate([np.full(n, i + 1) for i, n in enumerate(lengths)] + [np.zeros(3, int)])[None]
    positions = np.concatenate([np.arange(n) for n in lengths] + [np.arange(3)])[None]
    packed = np.asarray(model(jnp.asarray(ids), jnp.asarray(positions), jnp.asarray(segments)))
    start = 0
    for doc in docs:
        alone = np.asarray(model(jnp.asarray(doc[None])))
        np.testing.assert_allclose(packed[0, start : start + len(doc)], alone[0], rtol=1e-5, atol=1e-5)
        start += len(doc)


def test_without_segment_ids_documents_do_leak_into_each_other():
    """The converse of the test above: proves the segment mask is what keeps documents apart."""
    model = tiny_model()
    ids = jnp.asarray(np.random.RandomState(1).randint(3, 1024, (1, 12)))
    positions = jnp.asarray(np.concatenate([np.arange(6), np.arange(6)])[None])
    unmasked = model(ids, positions)
    alone = model(ids[:, 6:])
    assert not np.allclose(unmasked[0, 6:], alone[0], atol=1e-3)


def test_explicit_positions_shift_rope():
    model = tiny_model()
    ids = jnp.asarray(np.random.RandomState(2).randint(3, 1024, (1, 8)))
    default = model(ids)
    same = model(ids, jnp.arange(8)[None])
    shifted = model(ids, jnp.arange(8)[None] + 100)
    np.testing.assert_array_equal(default, same)
    # RoPE is relative: a constant offset changes nothing up to rounding, per-token jumps do.
    np.testing.assert_allclose(shifted, default, atol=2e-4)
    jumped = model(ids, jnp.asarray([[0, 1, 2, 3, 40, 41, 42, 43]]))
    assert not np.allclose(jumped[0, 4:], default[0, 4:], atol=1e-3)


def test_causality_future_tokens_do_not_change_earlier_logits():
    model = tiny_model()
    ids = np.random.RandomState(3).randint(3, 1024, (1, 10))
    changed = ids.copy()
    changed[0, 7:] = 5
    a, b = model(jnp.asarray(ids)), model(jnp.asarray(changed))
    np.testing.assert_allclose(a[0, :7], b[0, :7], rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("remat", ["none", "full", "dots", "dots_no_batch"])
def test_scan_unrolled_and_remat_give_the_same_loss_and_gradients(remat):
    ids = jnp.asarray(np.random.RandomState(4).randint(3, 1024, (2, 16)))

    def loss_and_grads(**overrides):
        model = tiny_model(**overrides)

        def loss(m):
            logits = m(ids[:, :-1])
            return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), ids[:, 1:, None], -1))

        return nnx.value_and_grad(loss)(model)

    base_loss, base_grads = loss_and_grads()
    got_loss, got_grads = loss_and_grads(remat=remat, scan_layers=remat != "dots")
    np.testing.assert_allclose(got_loss, base_loss, rtol=1e-6)
    for a, b in zip(jax.tree.leaves(base_grads), jax.tree.leaves(got_grads)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_bf16_compute_keeps_fp32_params_and_logits_close_to_fp32():
    ids = jnp.asarray(np.random.RandomState(5).randint(3, 1024, (2, 16)))
    fp32 = tiny_model()
    bf16 = tiny_model(compute_dtype="bfloat16")
    assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(nnx.state(bf16, nnx.Param)))
    a, b = fp32(ids), bf16(ids)
    assert b.dtype == jnp.float32
    assert float(jnp.abs(a - b).max()) / float(jnp.abs(a).max()) < 0.05


def test_every_parameter_has_logical_axes_of_its_rank():
    state = nnx.state(tiny_model(), nnx.Param)
    leaves = jax.tree_util.tree_leaves_with_path(state, is_leaf=lambda x: isinstance(x, nnx.Variable))
    assert len(leaves) == 12
    for path, var in leaves:
        axes = var.get_metadata()["out_sharding"]
        assert len(axes) == var.ndim, path
        if "layers" in jax.tree_util.keystr(path):
            assert axes[0] == "layers"


def test_config_rejects_heads_not_divisible_by_kv_heads():
    with pytest.raises(Exception, match="multiple of model.num_kv_heads"):
        dataclasses.replace(preset_config("tiny"), num_kv_heads=3)

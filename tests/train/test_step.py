"""The one train step: batch forms with and without segment ids, micro-batching and its single division."""

import jax
import numpy as np

from phijax.parallel.mesh import batch_sharding, build_mesh
from phijax.train.config import load_train_job
from phijax.train.optim import make_optimizer
from phijax.train.state import init_state, state_layout
from phijax.train.step import make_train_step


def _one_step(cfg, batch):
    mesh = build_mesh(cfg.mesh)
    tx = make_optimizer(cfg.optim, cfg.train.steps)
    layout = state_layout(cfg.model, tx, mesh, cfg.mesh.rules)
    sharding = batch_sharding(mesh, cfg.mesh.rules)
    step = make_train_step(layout, tx, sharding, cfg.train.grad_accum, cfg.train.loss_chunk)
    state, metrics = step(init_state(cfg.model, tx, layout, seed=0), batch)
    return jax.device_get(state["params"]), jax.device_get(metrics)


def test_a_batch_without_segment_ids_trains_like_one_document_per_row():
    cfg = load_train_job(
        [],
        [
            "model.preset=tiny",
            "train.global_batch=8",
            "train.seq_len=32",
            "train.grad_accum=2",
            "mesh.data=2",
            "mesh.fsdp=4",
        ],
    )
    rng = np.random.default_rng(0)
    ids = rng.integers(3, cfg.model.vocab_size, (8, 33), dtype=np.int32)
    ones = np.ones((8, 32), np.int32)
    batch = {
        "input_ids": ids[:, :-1],
        "targets": ids[:, 1:],
        "loss_mask": ones,
        "positions": np.broadcast_to(np.arange(32, dtype=np.int32), (8, 32)).copy(),
    }
    params_masked, metrics_masked = _one_step(cfg, {**batch, "segment_ids": ones})
    params_causal, metrics_causal = _one_step(cfg, batch)
    np.testing.assert_allclose(metrics_causal["loss"], metrics_masked["loss"], rtol=1e-6)
    np.testing.assert_allclose(metrics_causal["grad_norm"], metrics_masked["grad_norm"], rtol=1e-5)
    for a, b in zip(jax.tree.leaves(params_causal), jax.tree.leaves(params_masked)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)

    two_docs = np.where(np.arange(32) < 16, 1, 2).astype(np.int32)[None].repeat(8, 0)
    _, metrics_packed = _one_step(cfg, {**batch, "segment_ids": two_docs})
    assert abs(float(metrics_packed["loss"]) - float(metrics_causal["loss"])) > 1e-4  # the mask does act


def test_micro_batches_divide_once_by_the_total_weight():
    """Micro-batch 0 gets every trained token but one row's; a mean of per-micro-batch means would differ."""
    rng = np.random.default_rng(1)
    ids = rng.integers(3, 1000, (8, 33), dtype=np.int32)
    mask = np.ones((8, 32), np.int32)
    mask[1::2, 1:] = 0  # rows 1, 3, 5, 7 (micro-batch 1 of 2) train one token each
    batch = {
        "input_ids": ids[:, :-1],
        "targets": ids[:, 1:],
        "loss_mask": mask,
        "positions": np.broadcast_to(np.arange(32, dtype=np.int32), (8, 32)).copy(),
    }
    results = {}
    for accum in (1, 2):
        cfg = load_train_job(
            [],
            [
                "model.preset=tiny",
                "train.global_batch=8",
                "train.seq_len=32",
                f"train.grad_accum={accum}",
                "mesh.data=2",
                "mesh.fsdp=4",
            ],
        )
        results[accum] = _one_step(cfg, batch)
    (_, metrics_1), (_, metrics_2) = results[1], results[2]
    assert metrics_1["trained_tokens"] == metrics_2["trained_tokens"] == 4 * 32 + 4
    np.testing.assert_allclose(metrics_2["loss"], metrics_1["loss"], rtol=1e-5)
    np.testing.assert_allclose(metrics_2["grad_norm"], metrics_1["grad_norm"], rtol=1e-4)


def test_micro_batches_keep_a_pairs_rows_together_and_stride_the_pairs():
    from phijax.train.step import micro_batches

    targets = np.arange(8)[:, None].repeat(3, 1)  # 4 pairs: rows (0, 1), (2, 3), (4, 5), (6, 7)
    shared = np.arange(4)[:, None].repeat(3, 1)  # one input row a pair
    split = micro_batches({"targets": targets, "input_ids": shared}, grad_accum=2, examples=4)
    assert split["targets"][:, :, 0].tolist() == [[0, 1, 4, 5], [2, 3, 6, 7]]
    assert split["input_ids"][:, :, 0].tolist() == [[0, 2], [1, 3]]

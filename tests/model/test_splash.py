"""Splash attention (`model.attention=splash`, the Pallas TPU kernel, run here in Pallas's CPU
interpreter) against XLA's attention: outputs and gradients, packed documents, grouped-query heads,
through the whole model, and sharded over a mesh by shard_map."""

import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from phijax.errors import ConfigError, PhijaxError
from phijax.model.attention import attend, document_mask
from phijax.model.splash import splash_attention
from phijax.train.config import load_train_job

BATCH, SEQ, HEADS, KV_HEADS, HEAD_DIM = 2, 256, 8, 2, 64


def _qkv():
    kq, kk, kv = jax.random.split(jax.random.key(0), 3)
    return (
        jax.random.normal(kq, (BATCH, SEQ, HEADS, HEAD_DIM)),
        jax.random.normal(kk, (BATCH, SEQ, KV_HEADS, HEAD_DIM)),
        jax.random.normal(kv, (BATCH, SEQ, KV_HEADS, HEAD_DIM)),
    )


def _segments():
    """Row 0: documents of 100, 100 and 56 tokens (boundaries inside the kernel's blocks); row 1: one."""
    return jnp.asarray(np.stack([np.repeat([1, 2, 3], [100, 100, 56]), np.ones(SEQ, int)]), jnp.int32)


def _xla(q, k, v, segments):
    mask = None if segments is None else document_mask(segments, segments)
    return attend(q, k, v, mask=mask, causal=True, implementation="xla")


@pytest.mark.parametrize("packed", [False, True], ids=["one-document", "packed-documents"])
def test_splash_matches_xla_attention_and_its_gradients(packed):
    segments = _segments() if packed else None
    q, k, v = _qkv()
    np.testing.assert_allclose(
        jax.jit(splash_attention)(q, k, v, segments), _xla(q, k, v, segments), atol=2e-5, rtol=2e-5
    )
    weights = jnp.linspace(-1, 1, HEAD_DIM)

    def grads(fn):
        return jax.jit(jax.grad(lambda q, k, v: jnp.sum(fn(q, k, v, segments) * weights), argnums=(0, 1, 2)))(q, k, v)

    for got, want in zip(grads(splash_attention), grads(_xla)):
        np.testing.assert_allclose(got, want, atol=2e-5 * float(jnp.abs(want).max()))


def test_a_sequence_of_640_tokens_is_tiled_by_blocks_that_divide_it():
    q, k, v = (x[:, :128] for x in _qkv())
    q, k, v = (jnp.tile(x, (1, 5, 1, 1)) for x in (q, k, v))  # 640 = 5 x 128: 512 does not divide it
    np.testing.assert_allclose(splash_attention(q, k, v, None), _xla(q, k, v, None), atol=2e-5, rtol=2e-5)


def test_packing_matters_to_splash():
    q, k, v = _qkv()
    apart = splash_attention(q, k, v, _segments())
    together = splash_attention(q, k, v, None)
    assert float(jnp.abs(apart[0, 100:] - together[0, 100:]).max()) > 1e-2  # later documents differ
    np.testing.assert_allclose(apart[0, :100], together[0, :100], atol=2e-5)  # the first one does not


def test_a_sequence_the_kernel_cannot_tile_is_refused_in_one_line():
    q = jnp.zeros((1, 200, HEADS, HEAD_DIM))
    k = jnp.zeros((1, 200, KV_HEADS, HEAD_DIM))
    with pytest.raises(
        PhijaxError,
        match=r"^model.attention=splash needs a sequence length divisible by 128, "
        r"got 200; change train.seq_len or use model.attention=xla$",
    ):
        splash_attention(q, k, k, None)


def _train_step_metrics(attention: str, mesh: str) -> tuple[dict, list]:
    from phijax.parallel.mesh import batch_sharding, build_mesh
    from phijax.train.optim import make_optimizer
    from phijax.train.state import init_state, state_layout
    from phijax.train.step import make_train_step

    data, fsdp, tensor = mesh.split(",")
    cfg = load_train_job(
        [],
        [
            "model.preset=tiny",
            f"model.attention={attention}",
            "train.global_batch=4",
            "train.seq_len=128",
            f"mesh.data={data}",
            f"mesh.fsdp={fsdp}",
            f"mesh.tensor={tensor}",
        ],
    )
    built = build_mesh(cfg.mesh)
    tx = make_optimizer(cfg.optim, 10)
    layout = state_layout(cfg.model, tx, built, cfg.mesh.rules)
    sharding = batch_sharding(built, cfg.mesh.rules)
    step = make_train_step(layout, tx, sharding, 1, cfg.train.loss_chunk)
    ids = np.random.default_rng(0).integers(3, cfg.model.vocab_size, (4, 129), dtype=np.int32)
    segments = np.repeat([1, 2], [50, 78])[None].repeat(4, 0).astype(np.int32)
    positions = np.concatenate([np.arange(50), np.arange(78)])[None].repeat(4, 0).astype(np.int32)
    batch = {
        "input_ids": ids[:, :-1],
        "targets": ids[:, 1:],
        "positions": positions,
        "segment_ids": segments,
        "loss_mask": np.ones((4, 128), np.int32),
    }
    start = jax.tree.leaves(jax.device_get(init_state(cfg.model, tx, layout, seed=0)["params"]))
    state, metrics = step(init_state(cfg.model, tx, layout, seed=0), batch)
    updates = [new - old for new, old in zip(jax.tree.leaves(jax.device_get(state["params"])), start)]
    return jax.device_get(metrics), updates


def test_a_sharded_train_step_with_splash_equals_the_xla_one():
    """data 2 x fsdp 2 x tensor 2: splash runs per device under shard_map (batch and heads split)."""
    want_metrics, want_updates = _train_step_metrics("xla", "2,2,2")
    got_metrics, got_updates = _train_step_metrics("splash", "2,2,2")
    np.testing.assert_allclose(got_metrics["loss"], want_metrics["loss"], rtol=1e-5)
    np.testing.assert_allclose(got_metrics["grad_norm"], want_metrics["grad_norm"], rtol=1e-4)
    for got, want in zip(got_updates, want_updates):  # AdamW's first step: about lr * sign(gradient)
        assert np.abs(want).max() > 0
        assert np.mean(np.isclose(got, want, rtol=1e-3, atol=1e-3 * np.abs(want).max())) > 0.999


def test_a_run_config_with_an_untileable_sequence_is_refused_at_load(tmp_path):
    with pytest.raises(ConfigError, match="train.seq_len is 100; use a multiple of 128"):
        load_train_job([], ["model.attention=splash", "train.seq_len=100"])
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "phijax.cli",
            "train",
            "--config",
            "configs/tiny/pretrain.yaml",
            "model.attention=splash",
            "train.seq_len=100",
            f"run_dir={tmp_path / 'run'}",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1
    assert "model.attention=splash" in done.stderr and not (tmp_path / "run").exists()

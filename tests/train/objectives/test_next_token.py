"""SFT on the tiny model: the loss is cross-entropy over assistant tokens only, and it falls."""

from pathlib import Path

import jax
import numpy as np
import pytest
from flax import nnx

from phijax.data.pipeline import build_batches, tokenizer_for
from phijax.errors import ConfigError
from phijax.parallel.mesh import batch_sharding, build_mesh
from phijax.train.config import load_train_job
from phijax.train.objectives import objective_class
from phijax.train.optim import make_optimizer
from phijax.train.state import init_state, state_layout
from phijax.train.step import MODEL_INPUTS, make_train_step
from phijax.train.trainer import train

SFT = Path(__file__).resolve().parents[3] / "configs" / "tiny" / "sft.yaml"


def sft_config(run_dir, **extra):
    values = {
        "run_dir": str(run_dir),
        "checkpoint.init_from": "null",
        "train.seq_len": 64,
        "train.steps": 4,
        "train.log_every": 1,
        "checkpoint.every": 100,
        "optim.warmup_steps": 1,
        **extra,
    }
    return load_train_job([SFT], [f"{k}={v}" for k, v in values.items()])


def masked_cross_entropy(graphdef, params, batch):
    """Mean -log p(target) over loss_mask, from the model's full fp32 logits (numpy, float64)."""
    forward = jax.jit(lambda p, *xs: nnx.merge(graphdef, p)(*xs))
    logits = np.asarray(forward(params, batch["input_ids"], batch["positions"], batch["segment_ids"]), np.float64)
    logp = (
        logits
        - np.log(np.exp(logits - logits.max(-1, keepdims=True)).sum(-1, keepdims=True))
        - logits.max(-1, keepdims=True)
    )
    picked = np.take_along_axis(logp, batch["targets"][..., None], axis=-1)[..., 0]
    return float(-(picked * batch["loss_mask"]).sum() / batch["loss_mask"].sum())


def test_only_assistant_turns_are_trained(tmp_path):
    cfg = sft_config(tmp_path)
    batch = next(build_batches(cfg))
    tok = tokenizer_for(cfg.data.tokenizer)
    start, sep, end = (tok.special_tokens[t] for t in ("<|im_start|>", "<|im_sep|>", "<|im_end|>"))
    head = [start, *tok.encode("assistant"), sep]
    spans = 0
    for row in range(batch["input_ids"].shape[0]):
        for segment in set(batch["segment_ids"][row].tolist()) - {0}:
            where = batch["segment_ids"][row] == segment
            inputs, targets, mask = (batch[k][row][where] for k in ("input_ids", "targets", "loss_mask"))
            trained = np.flatnonzero(mask)
            if len(trained) == 0 or trained[0] < len(head) - 1:
                continue  # no assistant token, or a conversation's tail cut from its head
            # One contiguous span: right after `<|im_start|>assistant<|im_sep|>`, up to `<|im_end|>`.
            first, last = trained[0], trained[-1]
            assert list(inputs[first - len(head) + 1 : first + 1]) == head
            assert len(trained) == last - first + 1
            assert targets[last] == end or last == len(mask) - 1
            spans += 1
    assert spans >= 4


def test_step_loss_is_masked_cross_entropy_and_ignores_non_assistant_targets(tmp_path):
    cfg = sft_config(tmp_path)
    mesh = build_mesh(cfg.mesh)
    tx = make_optimizer(cfg.optim, cfg.train.steps)
    layout = state_layout(cfg.model, tx, mesh, cfg.mesh.rules)
    step = make_train_step(layout, tx, batch_sharding(mesh, cfg.mesh.rules))
    batch = next(build_batches(cfg))
    assert 0 < batch["loss_mask"].mean() < 0.9  # prompts and markup are present but untrained
    state = init_state(cfg.model, tx, layout, seed=0)
    copy = jax.tree.map(jax.numpy.copy, state)  # the step donates its input state
    expected = masked_cross_entropy(layout.graphdef, state["params"], batch)
    _, metrics = step(state, {k: jax.numpy.asarray(batch[k]) for k in MODEL_INPUTS})
    assert abs(float(metrics["loss"]) - expected) < 1e-4 * expected

    # Scrambling every target the mask excludes leaves the loss as it was.
    scrambled = dict(batch)
    noise = np.random.default_rng(0).integers(0, cfg.model.vocab_size, batch["targets"].shape)
    scrambled["targets"] = np.where(batch["loss_mask"] == 1, batch["targets"], noise).astype(np.int32)
    _, again = step(copy, {k: jax.numpy.asarray(scrambled[k]) for k in MODEL_INPUTS})
    assert float(again["loss"]) == pytest.approx(float(metrics["loss"]), rel=1e-6)


def test_tiny_sft_run_learns(tmp_path):
    result = train(sft_config(tmp_path / "run", **{"train.steps": 16, "optim.peak_lr": 3e-3}))
    losses = [result.losses[s] for s in sorted(result.losses)]
    assert np.mean(losses[-3:]) < 0.8 * np.mean(losses[:3])


def test_sft_refuses_the_curriculum_in_text_format(tmp_path):
    cfg = sft_config(tmp_path, **{"data.sources": "[{name: c, source: curriculum, format: text}]"})
    with pytest.raises(ConfigError, match="format: chat"):
        objective_class("sft").validate(cfg)

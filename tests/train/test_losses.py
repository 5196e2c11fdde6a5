"""DPO / IPO losses and sequence log-probabilities against numpy closed forms."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from phijax.train.losses import dpo_loss, sequence_logps


def np_log_sigmoid(x: np.ndarray) -> np.ndarray:
    return -np.logaddexp(0.0, -x)


def random_logps(seed: int, batch: int = 16) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [-rng.gamma(2.0, 20.0, size=batch).astype(np.float32) for _ in range(4)]


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("beta", [0.05, 0.1, 0.5])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.1, 0.3])
def test_sigmoid_dpo_equals_closed_form(seed, beta, label_smoothing):
    pc, pr, rc, rr = random_logps(seed)
    h = (pc - rc) - (pr - rr)
    expected = np.mean(-(1 - label_smoothing) * np_log_sigmoid(beta * h) - label_smoothing * np_log_sigmoid(-beta * h))
    loss, metrics = dpo_loss(pc, pr, rc, rr, beta=beta, label_smoothing=label_smoothing)
    np.testing.assert_allclose(float(loss), expected, rtol=1e-5)
    chosen, rejected = beta * (pc - rc), beta * (pr - rr)
    np.testing.assert_allclose(float(metrics["rewards/chosen"]), chosen.mean(), rtol=1e-5)
    np.testing.assert_allclose(float(metrics["rewards/rejected"]), rejected.mean(), rtol=1e-5)
    np.testing.assert_allclose(float(metrics["rewards/margins"]), (chosen - rejected).mean(), rtol=1e-5, atol=1e-6)
    assert float(metrics["rewards/accuracies"]) == pytest.approx((chosen > rejected).mean())


@pytest.mark.parametrize("beta", [0.1, 0.5])
def test_ipo_equals_closed_form(beta):
    pc, pr, rc, rr = [x / 30 for x in random_logps(5)]  # IPO works on length-averaged log-probs
    h = (pc - rc) - (pr - rr)
    loss, _ = dpo_loss(pc, pr, rc, rr, beta=beta, loss_type="ipo")
    np.testing.assert_allclose(float(loss), np.mean((h - 1 / (2 * beta)) ** 2), rtol=1e-5)


def test_equal_policy_and_reference_gives_log_2_and_zero_rewards():
    x = jnp.array([-3.0, -7.0, -1.5])
    loss, metrics = dpo_loss(x, x - 1, x, x - 1, beta=0.1)
    assert float(loss) == pytest.approx(np.log(2.0))
    assert float(metrics["rewards/margins"]) == 0.0 and float(metrics["rewards/accuracies"]) == 0.0


def test_gradient_raises_chosen_and_lowers_rejected():
    pc, pr, rc, rr = (jnp.asarray(x) for x in random_logps(1, batch=4))
    grad_c, grad_r = jax.grad(lambda c, r: dpo_loss(c, r, rc, rr)[0], argnums=(0, 1))(pc, pr)
    assert bool(jnp.all(grad_c < 0)) and bool(jnp.all(grad_r > 0))


def test_loss_is_jittable():
    pc, pr, rc, rr = random_logps(2)
    eager, _ = dpo_loss(pc, pr, rc, rr, beta=0.2, label_smoothing=0.1)
    jitted, _ = jax.jit(dpo_loss, static_argnames=("beta", "label_smoothing", "loss_type"))(
        pc, pr, rc, rr, beta=0.2, label_smoothing=0.1
    )
    np.testing.assert_allclose(float(jitted), float(eager), rtol=1e-6)


def test_bad_arguments_name_the_fix():
    x = jnp.zeros(2)
    with pytest.raises(ValueError, match="use one of sigmoid, ipo"):
        dpo_loss(x, x, x, x, loss_type="hinge")
    with pytest.raises(ValueError, match="beta"):
        dpo_loss(x, x, x, x, beta=0.0)
    with pytest.raises(ValueError, match=r"\[0, 0.5\)"):
        dpo_loss(x, x, x, x, label_smoothing=0.5)


def np_sequence_logps(logits, targets, mask):
    shifted = logits - logits.max(-1, keepdims=True)
    log_softmax = shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))
    picked = np.take_along_axis(log_softmax, targets[..., None], axis=-1)[..., 0]
    return (picked * mask).sum(-1)


def test_sequence_logps_matches_numpy_log_softmax():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 4, size=(3, 7, 50)).astype(np.float32)
    targets = rng.integers(0, 50, size=(3, 7))
    mask = (rng.random((3, 7)) < 0.6).astype(np.float32)
    np.testing.assert_allclose(
        np.asarray(sequence_logps(logits, targets, mask)),
        np_sequence_logps(logits, targets, mask),
        rtol=1e-5,
        atol=1e-4,
    )
    bf16 = jnp.asarray(logits, jnp.bfloat16)  # bf16 logits are upcast before the softmax
    np.testing.assert_allclose(
        np.asarray(sequence_logps(bf16, targets, mask)),
        np_sequence_logps(np.asarray(bf16, np.float32), targets, mask),
        rtol=1e-5,
        atol=1e-4,
    )
    averaged = sequence_logps(logits, targets, mask, average=True)
    np.testing.assert_allclose(
        np.asarray(averaged),
        np_sequence_logps(logits, targets, mask) / np.maximum(mask.sum(-1), 1),
        rtol=1e-5,
        atol=1e-5,
    )


def test_single_token_completion_picks_one_position():
    # A PTS pair: prompt = query + prefix, completion = one token at the last position.
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(2, 5, 11)).astype(np.float32)
    targets = rng.integers(0, 11, size=(2, 5))
    mask = np.zeros((2, 5), np.float32)
    mask[:, -1] = 1
    expected = logits[:, -1] - np.log(np.exp(logits[:, -1]).sum(-1, keepdims=True))
    expected = np.take_along_axis(expected, targets[:, -1:], axis=-1)[:, 0]
    np.testing.assert_allclose(np.asarray(sequence_logps(logits, targets, mask)), expected, rtol=1e-5)


def test_sequence_logps_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match=r"logits \[b, s, v\]"):
        sequence_logps(jnp.zeros((2, 3, 4)), jnp.zeros((2, 4), jnp.int32), jnp.ones((2, 4)))


def test_dpo_steps_on_single_token_pairs_raise_the_margin_and_the_chosen_token():
    # A bigram "model": logits for the next token are a row of a [vocab, vocab] table. PTS-style
    # pairs: after prompt [a, b], prefer token `chosen` over `rejected` (one-token completions).
    import optax

    vocab, rng = 12, np.random.default_rng(0)
    table = jnp.asarray(rng.normal(0, 0.5, size=(vocab, vocab)), jnp.float32)
    prompts = jnp.asarray(rng.integers(0, vocab, size=(8, 2)))
    chosen, rejected = jnp.asarray(rng.integers(0, vocab, 8)), jnp.asarray(rng.integers(0, vocab, 8))
    rejected = jnp.where(rejected == chosen, (rejected + 1) % vocab, rejected)
    mask = jnp.zeros((8, 2)).at[:, -1].set(1.0)  # only the position after the prompt is trained

    def logps(params, completion):
        logits = params[prompts]  # [batch, 2, vocab]: next-token logits after each prompt token
        targets = jnp.stack([prompts[:, 1], completion], axis=1)
        return sequence_logps(logits, targets, mask)

    reference = (logps(table, chosen), logps(table, rejected))  # one pass before training

    def loss_fn(params):
        return dpo_loss(logps(params, chosen), logps(params, rejected), *reference, beta=0.1)

    optimizer = optax.adam(0.05)
    params, state = table, optimizer.init(table)
    _, before = loss_fn(params)

    @jax.jit
    def step(params, state):
        grads = jax.grad(lambda p: loss_fn(p)[0])(params)
        updates, state = optimizer.update(grads, state)
        return optax.apply_updates(params, updates), state

    for _ in range(30):
        params, state = step(params, state)
    loss, after = loss_fn(params)
    assert float(before["rewards/margins"]) == 0.0 and float(loss) < np.log(2.0) - 0.1
    assert float(after["rewards/margins"]) > 0.2 and float(after["rewards/accuracies"]) == 1.0
    assert float(jnp.mean(logps(params, chosen))) > float(jnp.mean(reference[0]))

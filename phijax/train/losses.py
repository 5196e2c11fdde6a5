"""Training losses: next-token cross-entropy, and the preference losses (DPO, IPO) with the
per-sequence log-probabilities they consume.

Pure jax functions, tested against their closed forms. The training steps read the LM head chunk
by chunk (`next_token_loss`, `completion_logps`), so no [batch, seq, vocab] logits are ever whole;
`sequence_logps` takes whole logits, for callers that have them. The preference losses work the same for
whole-response pairs (DPO round 2, judge-guided) and for Pivotal Token Search pairs, whose
completion is one token: the completion mask then selects a single position.
"""

from __future__ import annotations

from functools import partial
from typing import Literal

import jax
import jax.numpy as jnp

LossType = Literal["sigmoid", "ipo"]
LOSS_TYPES = ("sigmoid", "ipo")


def sequence_logps(logits: jax.Array, targets: jax.Array, mask: jax.Array, average: bool = False) -> jax.Array:
    """Summed log-probabilities of the completion tokens of each sequence.

    logits: [batch, seq, vocab] scores at each position for the *next* token.
    targets: [batch, seq] int ids, already shifted: targets[:, t] is the token that logits[:, t]
        predicts (inputs[:, t + 1]).
    mask: [batch, seq] 1 where targets[:, t] is a completion token (not prompt, not padding).
    average: divide by the number of completion tokens (IPO is defined on the mean log-prob).
    Returns [batch] float32. Computed as logit[target] - logsumexp(logits) in float32, so no
    [batch, seq, vocab] log-softmax is kept.
    """
    if logits.ndim != 3 or targets.shape != logits.shape[:2] or mask.shape != targets.shape:
        raise ValueError(
            f"sequence_logps wants logits [b, s, v] with targets and mask [b, s]; got "
            f"logits {logits.shape}, targets {targets.shape}, mask {mask.shape}"
        )
    logits = logits.astype(jnp.float32)
    picked = jnp.take_along_axis(logits, targets[..., None].astype(jnp.int32), axis=-1)[..., 0]
    token_logps = picked - jax.nn.logsumexp(logits, axis=-1)
    mask = mask.astype(jnp.float32)
    total = jnp.sum(token_logps * mask, axis=-1)
    if average:
        total = total / jnp.maximum(jnp.sum(mask, axis=-1), 1.0)
    return total


def dpo_loss(
    policy_chosen_logps: jax.Array,
    policy_rejected_logps: jax.Array,
    reference_chosen_logps: jax.Array,
    reference_rejected_logps: jax.Array,
    beta: float = 0.1,
    label_smoothing: float = 0.0,
    loss_type: LossType = "sigmoid",
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Mean DPO loss over a batch of preference pairs, and TRL-style metrics (means of `pair_metrics`).

    All four inputs are [batch] log p(completion | prompt) (see `sequence_logps`).
    With h = (policy_chosen - reference_chosen) - (policy_rejected - reference_rejected):
      sigmoid (Rafailov et al.): -(1 - ls) * log σ(β h) - ls * log σ(-β h), ls = label_smoothing
        (conservative DPO: the label is flipped with probability ls);
      ipo (Azar et al.): (h - 1 / (2 β))², usually on length-averaged log-probs.
    """
    _check_dpo_args(beta, label_smoothing, loss_type)
    policy = jnp.stack([policy_chosen_logps, policy_rejected_logps], axis=-1)
    reference = jnp.stack([reference_chosen_logps, reference_rejected_logps], axis=-1)
    h = (policy[:, 0] - reference[:, 0]) - (policy[:, 1] - reference[:, 1])
    losses = sigmoid_dpo_losses(h, beta, label_smoothing) if loss_type == "sigmoid" else ipo_losses(h, beta)
    metrics = pair_metrics(policy, beta * (policy - reference))
    return jnp.mean(losses), {k: jnp.mean(v) for k, v in metrics.items()}


def sigmoid_dpo_losses(h: jax.Array, beta: float, label_smoothing: float = 0.0) -> jax.Array:
    """Per-pair DPO loss [pairs] of the log-ratio difference h [pairs] (see `dpo_loss`)."""
    return -(1.0 - label_smoothing) * jax.nn.log_sigmoid(beta * h) - label_smoothing * jax.nn.log_sigmoid(-beta * h)


def ipo_losses(h: jax.Array, beta: float) -> jax.Array:
    """Per-pair IPO loss [pairs]: (h - 1 / (2 β))² (see `dpo_loss`)."""
    return (h - 1.0 / (2.0 * beta)) ** 2


def pair_metrics(policy: jax.Array, rewards: jax.Array) -> dict[str, jax.Array]:
    """Per-pair metrics [pairs] from policy log-probs and implicit rewards, both [pairs, 2] (chosen, rejected).

    rewards/chosen and rewards/rejected are the implicit rewards (DPO: β·(policy - reference)),
    rewards/margins their difference, rewards/accuracies 1 where chosen > rejected; a batch's means of
    these are TRL's metrics.
    """
    return {
        "rewards/chosen": rewards[:, 0],
        "rewards/rejected": rewards[:, 1],
        "rewards/accuracies": (rewards[:, 0] > rewards[:, 1]).astype(jnp.float32),
        "rewards/margins": rewards[:, 0] - rewards[:, 1],
        "logps/chosen": policy[:, 0],
        "logps/rejected": policy[:, 1],
    }


def _check_dpo_args(beta: float, label_smoothing: float, loss_type: str) -> None:
    if loss_type not in LOSS_TYPES:
        raise ValueError(f"unknown DPO loss_type {loss_type!r}; use one of {', '.join(LOSS_TYPES)}")
    if not beta > 0:
        raise ValueError(f"DPO beta={beta!r} must be > 0 (0.1 is usual)")
    if not 0.0 <= label_smoothing < 0.5:
        raise ValueError(f"label_smoothing={label_smoothing!r} must be in [0, 0.5)")
    if loss_type == "ipo" and label_smoothing:
        raise ValueError("label_smoothing applies to the sigmoid loss only; set it to 0 for ipo")


def next_token_loss(
    hidden: jax.Array, lm_head: jax.Array, targets: jax.Array, mask: jax.Array, chunk: int = 1024
) -> tuple[jax.Array, jax.Array]:
    """Summed next-token cross-entropy and the number of trained tokens, without whole logits.

    hidden: [batch, seq, embed] final-normed states; lm_head: [embed, vocab]; targets, mask:
    [batch, seq]. Returns (sum of -log p(target) over masked tokens, count of masked tokens), both
    fp32 scalars: callers divide once over the global batch.

    The LM head's gradients are made in the forward pass, chunk by chunk (`_loss_and_gradients`):
    each chunk's fp32 logits [batch, chunk, vocab] give its loss and, as softmax - one-hot, the
    gradient of the loss with respect to them, which is turned at once into gradients for the chunk's
    hidden states and the head, and the logits are dropped. Autodiff over a checkpointed chunk (as in
    `completion_logps`) would compute every chunk's logits a second time in the backward pass: a
    third more LM-head FLOPs, at a 100,352-wide vocabulary a large share of a small model's step.
    The summed loss has one scalar cotangent, which is what lets the gradients be made ahead.
    """
    mask = mask.astype(jnp.float32)
    return _summed_nll(hidden, lm_head, targets, mask, chunk), jnp.sum(mask)


@partial(jax.custom_vjp, nondiff_argnums=(4,))
def _summed_nll(hidden: jax.Array, lm_head: jax.Array, targets: jax.Array, mask: jax.Array, chunk: int) -> jax.Array:
    return _loss_and_gradients(hidden, lm_head, targets, mask, chunk)[0]


def _summed_nll_fwd(hidden, lm_head, targets, mask, chunk):
    loss, d_hidden, d_head = _loss_and_gradients(hidden, lm_head, targets, mask, chunk)
    return loss, (d_hidden, d_head)


def _summed_nll_bwd(chunk, gradients, cotangent):
    d_hidden, d_head = gradients
    return ((cotangent * d_hidden).astype(d_hidden.dtype), cotangent * d_head, None, None)


_summed_nll.defvjp(_summed_nll_fwd, _summed_nll_bwd)


def _loss_and_gradients(
    hidden: jax.Array, lm_head: jax.Array, targets: jax.Array, mask: jax.Array, chunk: int
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """(summed masked NLL, its gradient for `hidden` in hidden's dtype, for `lm_head` in fp32).

    The logits' gradient (softmax - one-hot, masked) enters both matmuls in the compute dtype with
    fp32 accumulation, as autodiff of the bf16 forward would.
    """
    batch, seq, _ = hidden.shape
    split, size = _chunker(batch, seq, chunk)
    head = lm_head.astype(hidden.dtype)

    def one_chunk(carry: tuple[jax.Array, jax.Array], xs) -> tuple[tuple[jax.Array, jax.Array], jax.Array]:
        loss, d_head = carry
        h, t, m = xs
        logits = jnp.einsum("bsd,dv->bsv", h, head, preferred_element_type=jnp.float32)
        lse = jax.nn.logsumexp(logits, axis=-1)
        picked = jnp.take_along_axis(logits, t[..., None].astype(jnp.int32), axis=-1)[..., 0]
        one_hot = jax.nn.one_hot(t, logits.shape[-1], dtype=jnp.float32)
        d_logits = ((jnp.exp(logits - lse[..., None]) - one_hot) * m[..., None]).astype(h.dtype)
        d_h = jnp.einsum("bsv,dv->bsd", d_logits, head, preferred_element_type=jnp.float32).astype(h.dtype)
        d_head = d_head + jnp.einsum("bsd,bsv->dv", h, d_logits, preferred_element_type=jnp.float32)
        return (loss + jnp.sum((lse - picked) * m), d_head), d_h

    start = (jnp.zeros((), jnp.float32), jnp.zeros(lm_head.shape, jnp.float32))
    (loss, d_head), d_hidden = jax.lax.scan(one_chunk, start, (split(hidden), split(targets), split(mask)))
    d_hidden = jnp.moveaxis(d_hidden, 0, 1).reshape(batch, seq, -1)  # [n, batch, size, d] → [batch, seq, d]
    return loss, d_hidden, d_head


def _chunker(batch: int, seq: int, chunk: int):
    """(split [batch, seq, ...] → [n, batch, size, ...], size): the largest size ≤ chunk dividing seq."""
    size = max(c for c in range(1, min(chunk, seq) + 1) if seq % c == 0)
    n = seq // size

    def split(x: jax.Array) -> jax.Array:
        return jnp.moveaxis(x.reshape(batch, n, size, *x.shape[2:]), 1, 0)

    return split, size


def completion_logps(
    hidden: jax.Array, lm_head: jax.Array, targets: jax.Array, mask: jax.Array, chunk: int = 1024, average: bool = False
) -> jax.Array:
    """`sequence_logps` from final hidden states, without whole [batch, seq, vocab] logits.

    hidden: [batch, seq, embed]; lm_head: [embed, vocab]; targets, mask: [batch, seq] (as in
    `sequence_logps`). The sequence is cut into chunks of at most `chunk` positions; each chunk's
    fp32 logits [batch, chunk, vocab] are made, reduced to log p(target) and dropped. The chunk body
    is rematerialised, so the backward pass too holds one chunk's logits at a time instead of
    [batch, seq, vocab]. Returns [batch] float32 summed (or, with `average`, mean) log-probs.
    """
    batch, seq, _ = hidden.shape
    split, _ = _chunker(batch, seq, chunk)

    @jax.checkpoint
    def chunk_logps(total: jax.Array, xs: tuple[jax.Array, jax.Array, jax.Array]) -> tuple[jax.Array, None]:
        h, t, m = xs
        logits = jnp.einsum("bsd,dv->bsv", h, lm_head.astype(h.dtype), preferred_element_type=jnp.float32)
        picked = jnp.take_along_axis(logits, t[..., None].astype(jnp.int32), axis=-1)[..., 0]
        return total + jnp.sum((picked - jax.nn.logsumexp(logits, axis=-1)) * m, axis=-1), None

    mask = mask.astype(jnp.float32)
    total, _ = jax.lax.scan(chunk_logps, jnp.zeros((batch,), jnp.float32), (split(hidden), split(targets), split(mask)))
    if average:
        total = total / jnp.maximum(jnp.sum(mask, axis=-1), 1.0)
    return total

"""Sampling from a model, the public functions: `generate` (a batch of prompts) and
`sample_continuations` (many rollouts of one prefix, prefilled once), both returning a `Generation`.

    left-pad prompts to a bucketed length L ─► prefill (one forward pass, fills cache slots 0..L-1)
        ─► sample token 0 ─► while not all rows done: decode one token per row at slot L+t ─► sample

Both take token ids and a `Phi4` (sharded or not) and run one compiled program per shape and plan
(`phijax.inference.programs`); text, chat templates and stop strings belong to the policy
(`phijax.inference.policy`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.sharding import Mesh

from phijax.inference.cache import bucket_length
from phijax.inference.programs import (
    Decoded,
    continuations_program,
    generate_program,
    make_plan,
    model_mesh,
    padded_batch,
)
from phijax.inference.sampling import GenerationError, Sampling, SamplingMethod
from phijax.model.config import ModelConfig
from phijax.model.phi4 import Phi4
from phijax.parallel.config import DEFAULT_RULES

DEFAULT_SAMPLING = Sampling()  # temperature 1, no filters: the model's own distribution


@dataclass(frozen=True)
class Generation:
    """Sampled continuations: tokens [batch, max_new_tokens] (a row's stop token included, then
    `pad_id`); logprobs [batch, max_new_tokens], each token's log-probability in nats under the model
    (temperature 1, before top-k/top-p; 0 after the stop token); lengths [batch] (tokens generated
    per row, stop token included)."""

    tokens: np.ndarray
    logprobs: np.ndarray
    lengths: np.ndarray

    @classmethod
    def first_rows(cls, decoded: Decoded, n: int) -> Generation:
        """The first `n` rows of a decode loop's result (the rest filled the batch for sharding)."""
        return cls(np.asarray(decoded.tokens)[:n], np.asarray(decoded.logprobs)[:n], np.asarray(decoded.lengths)[:n])

    def rows(self, strip: Sequence[int] = ()) -> list[list[int]]:
        """Each row's generated ids; a final token in `strip` (e.g. the stop tokens) is dropped."""
        out = []
        for row, n in zip(self.tokens, self.lengths):
            ids = row[:n].tolist()
            out.append(ids[:-1] if ids and ids[-1] in strip else ids)
        return out


def generate(
    model: Phi4,
    prompts: Sequence[Sequence[int]],
    *,
    max_new_tokens: int,
    sampling: SamplingMethod = DEFAULT_SAMPLING,
    stop_tokens: Sequence[int] | None = None,
    seed: int = 0,
    row_ids: Sequence[int] | None = None,
    mesh: Mesh | None = None,
    rules: dict[str, Any] | None = None,
) -> Generation:
    """Sample a continuation of each prompt (token ids); rows stop at any of `stop_tokens`.

    `stop_tokens` default to the model's `eos_token_id`; `row_ids` (default 0..batch-1) pick each
    row's random stream. A sharded model runs on its own mesh (or `mesh`), rows sharded by the `batch`
    rule of `rules` (default: `phijax.parallel.config.DEFAULT_RULES`). The batch is filled up to a power
    of two (filler rows are dropped): an evaluation's calls of every size up to the policy's batch then
    compile a few programs per prompt bucket, not one per size.
    """
    prompts = [_checked_prompt(model.cfg, p, max_new_tokens) for p in prompts]
    if not prompts:
        raise GenerationError("no prompts given")
    row_ids = list(range(len(prompts))) if row_ids is None else [int(r) for r in row_ids]
    if len(row_ids) != len(prompts):
        raise GenerationError(f"{len(row_ids)} row_ids for {len(prompts)} prompts: give one per prompt")
    mesh, rules = mesh or model_mesh(model), rules or DEFAULT_RULES
    n = len(prompts)
    batch = padded_batch(1 << (n - 1).bit_length(), mesh, rules)  # a power of two: few compiled shapes
    prompts = prompts + [prompts[-1]] * (batch - n)  # filler rows, dropped below
    row_ids = row_ids + [0] * (batch - n)
    prompt_len = bucket_length(max(len(p) for p in prompts))
    tokens = np.full((batch, prompt_len), model.cfg.pad_token_id, np.int32)
    for row, prompt in enumerate(prompts):
        tokens[row, prompt_len - len(prompt) :] = prompt
    plan = make_plan(
        model.cfg, batch, prompt_len, max_new_tokens, sampling, _stops(model.cfg, stop_tokens), mesh, rules
    )
    graphdef, state = nnx.split(model)
    decoded = generate_program(
        graphdef,
        state,
        jnp.asarray(tokens),
        jnp.asarray([len(p) for p in prompts], jnp.int32),
        jnp.asarray(row_ids, jnp.int32),
        jnp.int32(seed),
        plan=plan,
    )
    return Generation.first_rows(decoded, n)


def sample_continuations(
    model: Phi4,
    prefix_ids: Sequence[int],
    n: int,
    *,
    max_new_tokens: int,
    sampling: SamplingMethod = DEFAULT_SAMPLING,
    stop_tokens: Sequence[int] | None = None,
    seed: int = 0,
    mesh: Mesh | None = None,
    rules: dict[str, Any] | None = None,
) -> Generation:
    """`n` continuations of one prefix: the prefix is prefilled once and its cache copied to n rows.

    Row i uses row id i, so the result equals `generate(model, [prefix_ids] * n, ...)`.
    """
    if n < 1:
        raise GenerationError(f"n must be at least 1, got {n}")
    prefix = _checked_prompt(model.cfg, prefix_ids, max_new_tokens)
    mesh, rules = mesh or model_mesh(model), rules or DEFAULT_RULES
    rows = padded_batch(n, mesh, rules)
    prompt_len = bucket_length(len(prefix))
    tokens = np.full((1, prompt_len), model.cfg.pad_token_id, np.int32)
    tokens[0, prompt_len - len(prefix) :] = prefix
    plan = make_plan(model.cfg, rows, prompt_len, max_new_tokens, sampling, _stops(model.cfg, stop_tokens), mesh, rules)
    graphdef, state = nnx.split(model)
    decoded = continuations_program(
        graphdef,
        state,
        jnp.asarray(tokens),
        jnp.asarray([len(prefix)], jnp.int32),
        jnp.arange(rows, dtype=jnp.int32),
        jnp.int32(seed),
        plan=plan,
    )
    return Generation.first_rows(decoded, n)


def _stops(cfg: ModelConfig, stop_tokens: Sequence[int] | None) -> tuple[int, ...]:
    return (cfg.eos_token_id,) if stop_tokens is None else tuple(sorted({int(t) for t in stop_tokens}))


def _checked_prompt(cfg: ModelConfig, prompt: Sequence[int], max_new_tokens: int) -> list[int]:
    ids = [int(t) for t in prompt]
    if max_new_tokens < 1:
        raise GenerationError(f"max_new_tokens must be at least 1, got {max_new_tokens}")
    if not ids:
        raise GenerationError("empty prompt: generation needs at least one prompt token (e.g. BOS)")
    if min(ids) < 0 or max(ids) >= cfg.vocab_size:
        raise GenerationError(f"prompt token ids must be in [0, {cfg.vocab_size}): got {min(ids)}..{max(ids)}")
    if len(ids) + max_new_tokens > cfg.max_seq_len:
        raise GenerationError(
            f"prompt ({len(ids)} tokens) + max_new_tokens ({max_new_tokens}) exceeds the model's "
            f"max_seq_len {cfg.max_seq_len}: shorten the prompt or lower max_new_tokens"
        )
    return ids

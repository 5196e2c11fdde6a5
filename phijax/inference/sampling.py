"""How the next token is drawn from the logits: sampling methods as small frozen dataclasses.

A method is hashable (it is part of a compiled program's static plan) and has one jax method,
`sample(logits [batch, vocab] fp32, keys [batch]) -> tokens int32 [batch]`:

- `Greedy()`: the argmax, no randomness;
- `Sampling(temperature, top_k, top_p)`: a categorical draw after HF's filters in HF's order
  (temperature, then top-k, then top-p); temperature 0 is greedy.

`sampling_method(temperature, top_k, top_p)` picks the method for user-facing settings.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp

from phijax.errors import PhijaxError


class GenerationError(PhijaxError):
    """Bad generation settings or prompts (empty prompt, too long for the model, bad sampling values)."""


@dataclass(frozen=True)
class Greedy:
    """The most likely token (ties: the lowest id)."""

    def sample(self, logits: jax.Array, keys: jax.Array) -> jax.Array:
        """logits [batch, vocab], keys [batch] (unused) -> int32 [batch]."""
        return jnp.argmax(logits, axis=-1).astype(jnp.int32)


@dataclass(frozen=True)
class Sampling:
    """A draw from softmax(logits / temperature) restricted to the top-k and to the top-p nucleus.

    temperature 0 is greedy (argmax); top_k 0 and top_p 1 switch those filters off.
    """

    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0

    def __post_init__(self) -> None:
        if not self.temperature >= 0:
            raise GenerationError(f"temperature must be >= 0 (0 = greedy), got {self.temperature}")
        if self.top_k < 0:
            raise GenerationError(f"top_k must be >= 0 (0 = off), got {self.top_k}")
        if not 0 < self.top_p <= 1:
            raise GenerationError(f"top_p must be in (0, 1] (1 = off), got {self.top_p}")

    def sample(self, logits: jax.Array, keys: jax.Array) -> jax.Array:
        """logits [batch, vocab], one key per row [batch] -> int32 [batch]."""
        if self.temperature == 0:
            return Greedy().sample(logits, keys)
        filtered = filter_logits(logits / self.temperature, self.top_k, self.top_p)
        return jax.vmap(jax.random.categorical)(keys, filtered).astype(jnp.int32)


SamplingMethod = Greedy | Sampling


def sampling_method(temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0) -> SamplingMethod:
    """`Greedy()` for temperature 0 (filters are then moot), else `Sampling(...)` (validated)."""
    method = Sampling(temperature, top_k, top_p)
    return Greedy() if temperature == 0 else method


def filter_logits(logits: jax.Array, top_k: int = 0, top_p: float = 1.0) -> jax.Array:
    """Set logits outside the top-k and outside the nucleus to -inf. logits: [batch, vocab].

    The nucleus is the smallest set of most likely tokens whose probability reaches top_p (the most
    likely token is always kept); tokens tied with the last one kept are kept too.
    """
    vocab = logits.shape[-1]
    if (top_k == 0 or top_k >= vocab) and top_p >= 1.0:
        return logits
    if 0 < top_k < vocab:
        ranked = jax.lax.top_k(logits, top_k)[0]  # [batch, k], descending
    else:
        ranked = -jnp.sort(-logits, axis=-1)
    threshold = ranked[:, -1]
    if top_p < 1.0:
        probs = jax.nn.softmax(ranked, axis=-1)
        mass_before = jnp.cumsum(probs, axis=-1) - probs
        kept = jnp.sum(mass_before < top_p, axis=-1)  # >= 1: the first token has mass_before 0
        threshold = jnp.take_along_axis(ranked, kept[:, None] - 1, axis=-1)[:, 0]
    return jnp.where(logits < threshold[:, None], -jnp.inf, logits)


def sample_tokens(logits: jax.Array, keys: jax.Array, method: SamplingMethod) -> jax.Array:
    """One token per row from logits [batch, vocab] with per-row keys [batch] -> int32 [batch]."""
    return method.sample(logits, keys)

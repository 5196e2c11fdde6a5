"""The key/value cache and the two forward passes over it: prefill a prompt, decode one token.

Layout. Prompts are *left*-padded to L (`bucket_length`: the next power of two, at least 16), so every
row's last prompt token sits at slot L-1, prefill's next-token logits are read at one slot, and all
rows write each decoded token at the same cache slot. Positions count from a row's first real token
(padding slots get position 0 and are masked out as keys), so a row's logits do not depend on how
much padding its batch gave it. Keys and values are [layers, batch, max_len, kv_heads, head_dim] in
the compute dtype: kv heads are not repeated to the query heads (grouped-query attention shrinks the
cache by num_heads / num_kv_heads).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from phijax.model.config import ModelConfig
from phijax.model.phi4 import Phi4

MIN_BUCKET = 16
CACHE_AXES = ("layers", "batch", "length", "kv_heads", "head_dim")


def bucket_length(n: int) -> int:
    """Padded length of n tokens: the next power of two >= n, at least 16 (few distinct compilations)."""
    return max(MIN_BUCKET, 1 << (max(n, 1) - 1).bit_length())


class KVCache(NamedTuple):
    """Keys and values of every layer plus what the next decode step needs.

    k, v: [layers, batch, max_len, kv_heads, head_dim]; key_valid: [batch, max_len] (False on left
    padding); positions: [batch], the RoPE position of each row's next token; index: the cache slot
    the next token is written to (the same for every row, thanks to left padding).
    """

    k: jax.Array
    v: jax.Array
    key_valid: jax.Array
    positions: jax.Array
    index: jax.Array


def init_cache(cfg: ModelConfig, batch: int, max_len: int, key_valid: jax.Array, positions: jax.Array) -> KVCache:
    """An empty cache of `max_len` slots in the compute dtype (GQA: `num_kv_heads` heads)."""
    shape = (cfg.num_layers, batch, max_len, cfg.num_kv_heads, cfg.head_dim)
    zeros = jnp.zeros(shape, jnp.dtype(cfg.compute_dtype))
    return KVCache(zeros, zeros, key_valid, positions, jnp.zeros((), jnp.int32))


def prefill(model: Phi4, tokens: jax.Array, lengths: jax.Array, max_len: int) -> tuple[jax.Array, KVCache]:
    """Run left-padded prompts through the model, filling cache slots 0..L-1.

    tokens: [batch, L], each row's prompt right-aligned; lengths: [batch] real prompt lengths (>= 1).
    Returns next-token logits [batch, vocab] (fp32) and a cache of `max_len` slots.
    """
    batch, prompt_len = tokens.shape
    padding = (prompt_len - lengths)[:, None]
    positions = jnp.maximum(jnp.arange(prompt_len)[None, :] - padding, 0)
    key_valid = jnp.arange(max_len)[None, :] >= padding
    cache = init_cache(model.cfg, batch, max_len, key_valid, lengths.astype(jnp.int32))
    hidden, (k, v) = model.cached_hidden_states(tokens, positions, (cache.k, cache.v), cache.index, key_valid)
    logits = model.logits(hidden[:, -1:])[:, 0]
    return logits, cache._replace(k=k, v=v, index=cache.index + prompt_len)


def decode_step(model: Phi4, cache: KVCache, tokens: jax.Array) -> tuple[jax.Array, KVCache]:
    """Feed one token per row [batch]; returns next-token logits [batch, vocab] and the advanced cache."""
    hidden, (k, v) = model.cached_hidden_states(
        tokens[:, None], cache.positions[:, None], (cache.k, cache.v), cache.index, cache.key_valid
    )
    advanced = cache._replace(k=k, v=v, positions=cache.positions + 1, index=cache.index + 1)
    return model.logits(hidden)[:, 0], advanced

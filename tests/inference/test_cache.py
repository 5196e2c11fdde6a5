"""The key/value cache: prefill and decode logits equal full forward passes; GQA cache; bf16; buckets."""

import dataclasses
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from phijax.inference.cache import bucket_length, decode_step, prefill
from phijax.model.phi4 import Phi4

from .conftest import PROMPTS, logits_without_cache


def test_cached_logits_equal_full_forward_logits_at_prefill_and_every_decode_step(model):
    prompt_len, steps = 16, 6
    fed = np.random.RandomState(0).randint(3, 1024, (len(PROMPTS), steps))  # forced tokens, not sampled
    tokens = np.zeros((len(PROMPTS), prompt_len), np.int32)
    for row, prompt in enumerate(PROMPTS):
        tokens[row, prompt_len - len(prompt) :] = prompt
    lengths = jnp.asarray([len(p) for p in PROMPTS])

    @nnx.jit
    def cached_run(model, tokens, fed):
        logits, cache = prefill(model, tokens, lengths, prompt_len + steps)
        every = [logits]
        for step in range(steps):
            logits, cache = decode_step(model, cache, fed[:, step])
            every.append(logits)
        return jnp.stack(every, axis=1)  # [batch, steps + 1, vocab]

    cached = np.asarray(cached_run(model, jnp.asarray(tokens), jnp.asarray(fed)))
    for row, prompt in enumerate(PROMPTS):
        reference = logits_without_cache(model, prompt + fed[row].tolist())[len(prompt) - 1 :]
        np.testing.assert_allclose(cached[row], reference, rtol=1e-4, atol=1e-4)


def test_cache_holds_kv_heads_not_repeated_query_heads(model):
    cfg = model.cfg
    assert cfg.num_kv_heads < cfg.num_heads
    tokens = jax.ShapeDtypeStruct((3, 16), jnp.int32)
    lengths = jax.ShapeDtypeStruct((3,), jnp.int32)
    _, cache = nnx.eval_shape(partial(prefill, max_len=24), model, tokens, lengths)
    assert cache.k.shape == cache.v.shape == (cfg.num_layers, 3, 24, cfg.num_kv_heads, cfg.head_dim)
    assert cache.key_valid.shape == (3, 24)


def test_bfloat16_params_decode_close_to_the_float32_model_they_round(model):
    """bf16 inference weights stay bf16 and the cache path computes with them: prefill and decode
    logits are close to the fp32 model's."""
    cfg = dataclasses.replace(model.cfg, param_dtype="bfloat16", compute_dtype="bfloat16")
    graphdef, _ = nnx.split(nnx.eval_shape(lambda: Phi4(cfg, rngs=nnx.Rngs(0))))
    bf16 = nnx.merge(graphdef, jax.tree.map(lambda a: a.astype(jnp.bfloat16), nnx.state(model)))
    assert {p.dtype for p in jax.tree.leaves(nnx.state(bf16, nnx.Param))} == {jnp.dtype(jnp.bfloat16)}
    tokens = jnp.asarray(np.random.RandomState(3).randint(3, 1024, (2, 16)), jnp.int32)
    lengths, fed = jnp.asarray([16, 9]), jnp.asarray([5, 600], jnp.int32)

    @nnx.jit
    def prefill_and_one_step(model):
        first, cache = prefill(model, tokens, lengths, 20)
        second, cache = decode_step(model, cache, fed)
        return jnp.stack([first, second], axis=1), cache.k  # logits [batch, 2, vocab]

    want, _ = prefill_and_one_step(model)
    got, cache_k = prefill_and_one_step(bf16)
    assert cache_k.dtype == jnp.bfloat16 and got.dtype == jnp.float32
    assert float(jnp.abs(got - want).max()) / float(jnp.abs(want).max()) < 0.05


def test_prompt_lengths_are_bucketed_to_powers_of_two():
    assert [bucket_length(n) for n in (1, 16, 17, 64, 65, 1000)] == [16, 16, 32, 64, 128, 1024]

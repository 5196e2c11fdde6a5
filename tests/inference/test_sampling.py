"""Sampling methods: top-k and nucleus filters against hand-computed sets, sampled proportions, errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from phijax.inference.sampling import GenerationError, Greedy, Sampling, filter_logits, sample_tokens, sampling_method


def test_top_k_keeps_the_k_largest_logits():
    logits = jnp.asarray([[0.3, 2.0, -1.0, 1.0, 0.5]])
    kept = np.isfinite(np.asarray(filter_logits(logits, top_k=2)))
    assert kept.tolist() == [[False, True, False, True, False]]


@pytest.mark.parametrize("top_p, nucleus", [(0.4, [0]), (0.75, [0, 1]), (0.85, [0, 1, 2]), (1.0, [0, 1, 2, 3])])
def test_top_p_keeps_the_smallest_set_reaching_p(top_p, nucleus):
    logits = jnp.log(jnp.asarray([[0.5, 0.3, 0.15, 0.05]]))[:, [2, 0, 3, 1]]  # order must not matter
    kept = np.flatnonzero(np.isfinite(np.asarray(filter_logits(logits, top_p=top_p))[0]))
    assert sorted(kept.tolist()) == sorted([2, 0, 3, 1].index(i) for i in nucleus)


def test_top_p_samples_only_the_nucleus_in_renormalised_proportions():
    logits = jnp.broadcast_to(jnp.log(jnp.asarray([0.5, 0.3, 0.15, 0.05])), (4000, 4))
    keys = jax.random.split(jax.random.key(0), 4000)
    tokens = np.asarray(sample_tokens(logits, keys, Sampling(temperature=1.0, top_p=0.75)))
    counts = np.bincount(tokens, minlength=4)
    assert counts[2] == counts[3] == 0
    assert abs(counts[0] / 4000 - 0.5 / 0.8) < 0.03  # 4 standard errors


def test_greedy_is_the_argmax_and_temperature_0_picks_it():
    logits = jnp.asarray([[0.1, 3.0, 2.9], [5.0, -1.0, 4.0]])
    keys = jax.random.split(jax.random.key(0), 2)
    assert np.asarray(Greedy().sample(logits, keys)).tolist() == [1, 0]
    assert sampling_method(0.0, top_p=0.5) == Greedy()
    assert sampling_method(0.7, top_p=0.5) == Sampling(0.7, 0, 0.5)


def test_bad_sampling_settings_are_generation_errors():
    for bad in ({"temperature": -1}, {"top_k": -2}, {"top_p": 0.0}, {"top_p": 1.5}):
        with pytest.raises(GenerationError):
            Sampling(**bad)
        with pytest.raises(GenerationError):
            sampling_method(**bad)

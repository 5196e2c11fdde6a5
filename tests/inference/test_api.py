"""`generate` and `sample_continuations`: cached sampling equals full forward passes, per-row RNG,
stop tokens, shared-prefix rollouts, the sharded model, one program per bucket, input errors."""

import jax
import numpy as np
import pytest

from phijax.inference import programs
from phijax.inference.api import generate, sample_continuations
from phijax.inference.sampling import GenerationError, Greedy, Sampling

from .conftest import PROMPTS, logits_without_cache

GREEDY = Greedy()
WARM = Sampling(temperature=1.0)


def greedy_without_cache(model, prompt: list[int], steps: int) -> list[int]:
    ids = list(prompt)
    for _ in range(steps):
        ids.append(int(np.argmax(logits_without_cache(model, ids)[-1])))
    return ids[len(prompt) :]


def test_greedy_sampling_equals_argmax_of_full_forward_passes(model):
    result = generate(model, PROMPTS, max_new_tokens=8, sampling=GREEDY, stop_tokens=())
    for prompt, row in zip(PROMPTS, result.tokens):
        assert row.tolist() == greedy_without_cache(model, prompt, 8)
    assert result.lengths.tolist() == [8, 8, 8]


def test_logprobs_are_the_models_log_probabilities_of_the_sampled_tokens(model):
    result = generate(
        model, PROMPTS[:2], max_new_tokens=6, sampling=Sampling(temperature=0.7, top_k=20), seed=4, stop_tokens=()
    )
    for prompt, tokens, logprobs in zip(PROMPTS, result.tokens, result.logprobs):
        ids = prompt + tokens.tolist()
        reference = jax.nn.log_softmax(logits_without_cache(model, ids), axis=-1)  # temperature 1, unfiltered
        want = [reference[t - 1, ids[t]] for t in range(len(prompt), len(ids))]
        np.testing.assert_allclose(logprobs, want, rtol=1e-4, atol=1e-4)


def test_a_rows_sample_depends_on_its_row_id_not_on_the_rest_of_the_batch(model):
    alone = generate(model, [PROMPTS[0]], max_new_tokens=8, sampling=WARM, seed=5, row_ids=[7])
    batch = generate(
        model, [PROMPTS[1], PROMPTS[0], PROMPTS[2]], max_new_tokens=8, sampling=WARM, seed=5, row_ids=[0, 7, 1]
    )
    np.testing.assert_array_equal(batch.tokens[1], alone.tokens[0])
    other_row = generate(model, [PROMPTS[0]], max_new_tokens=8, sampling=WARM, seed=5, row_ids=[8])
    assert other_row.tokens[0].tolist() != alone.tokens[0].tolist()


def test_a_stop_token_ends_its_row_which_is_padded_after(model):
    free = generate(model, PROMPTS[:2], max_new_tokens=8, sampling=GREEDY, stop_tokens=())
    stop = int(free.tokens[0, 2])
    assert stop not in free.tokens[1].tolist()
    stopped = generate(model, PROMPTS[:2], max_new_tokens=8, sampling=GREEDY, stop_tokens=[stop])
    first = free.tokens[0].tolist().index(stop)
    assert stopped.lengths.tolist() == [first + 1, 8]
    assert stopped.tokens[0, : first + 1].tolist() == free.tokens[0, : first + 1].tolist()
    assert set(stopped.tokens[0, first + 1 :].tolist()) == {model.cfg.pad_token_id}
    assert not stopped.logprobs[0, first + 1 :].any() and stopped.logprobs[0, first] < 0
    assert stopped.rows(strip=[stop])[0] == free.tokens[0, :first].tolist()
    np.testing.assert_array_equal(stopped.tokens[1], free.tokens[1])


def test_top_k_1_equals_greedy(model):
    greedy = generate(model, PROMPTS, max_new_tokens=8, sampling=GREEDY, stop_tokens=())  # compiled above
    top1 = generate(model, PROMPTS, max_new_tokens=8, sampling=Sampling(temperature=1.5, top_k=1), stop_tokens=())
    np.testing.assert_array_equal(top1.tokens, greedy.tokens)


def test_shared_prefix_continuations_equal_sampling_each_row_from_the_full_prompt(model):
    shared = sample_continuations(model, PROMPTS[1], 5, max_new_tokens=8, sampling=WARM, seed=3)
    separate = generate(model, [PROMPTS[1]] * 5, max_new_tokens=8, sampling=WARM, seed=3)
    np.testing.assert_array_equal(shared.tokens, separate.tokens)
    np.testing.assert_array_equal(shared.lengths, separate.lengths)
    assert len({tuple(row) for row in shared.tokens.tolist()}) > 1  # rows draw different samples


def test_sharded_model_on_the_8_device_mesh_samples_what_the_unsharded_model_does(model, sharded_model):
    assert len(sharded_model.layers.attn.q[...].sharding.device_set) == 8
    # the unsharded programs are the ones the tests above compiled (same shapes and plans)
    got = generate(sharded_model, PROMPTS, max_new_tokens=8, sampling=WARM, seed=1)  # 3 rows run as 4
    want = generate(model, PROMPTS, max_new_tokens=8, sampling=WARM, seed=1)
    np.testing.assert_array_equal(got.tokens, want.tokens)
    got = sample_continuations(sharded_model, PROMPTS[0], 5, max_new_tokens=8, sampling=WARM, seed=2)  # 5 as 8
    want = sample_continuations(model, PROMPTS[0], 5, max_new_tokens=8, sampling=WARM, seed=2)
    np.testing.assert_array_equal(got.tokens, want.tokens)


def test_prompts_of_one_bucket_share_one_compiled_program(model):
    generate(model, [[5] * 3], max_new_tokens=3, sampling=GREEDY)
    compiled = programs.generate_program._cache_size()
    for length in (1, 7, 16):
        generate(model, [[5] * length], max_new_tokens=3, sampling=GREEDY, seed=length)
    assert programs.generate_program._cache_size() == compiled
    generate(model, [[5] * 17], max_new_tokens=3, sampling=GREEDY)
    assert programs.generate_program._cache_size() == compiled + 1


def test_batches_are_filled_to_a_power_of_two_so_sizes_share_a_program(model):
    generate(model, [[5] * 3] * 3, max_new_tokens=3, sampling=GREEDY)
    compiled = programs.generate_program._cache_size()
    assert generate(model, [[6] * 3] * 4, max_new_tokens=3, sampling=GREEDY).tokens.shape == (4, 3)
    assert programs.generate_program._cache_size() == compiled


@pytest.mark.parametrize(
    "prompt, max_new, words",
    [
        ([], 4, "empty prompt"),
        ([5] * 1020, 8, "exceeds the model's max_seq_len"),
        ([5, 2000], 4, "token ids must be in"),
        ([5], 0, "max_new_tokens must be at least 1"),
    ],
)
def test_bad_generation_inputs_are_generation_errors(model, prompt, max_new, words):
    with pytest.raises(GenerationError, match=words):
        generate(model, [prompt], max_new_tokens=max_new, sampling=GREEDY)

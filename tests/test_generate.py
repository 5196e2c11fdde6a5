"""The generation engine: cached decoding equals full forward passes, sampling filters, per-row RNG,
stop tokens, shared-prefix rollouts, the sharded model, and `phijax generate`."""

import dataclasses
from functools import partial
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from phijax.cli import main
from phijax.config import MeshConfig
from phijax.data import load_tokenizer
from phijax.generate import (
    GenerationError,
    ModelPolicy,
    Sampling,
    bucket_length,
    decode_step,
    filter_logits,
    generate,
    prefill,
    sample_continuations,
    sample_tokens,
)
from phijax.model.checkpoint import save_model_dir
from phijax.model.phi4 import Phi4
from phijax.model.presets import preset_config
from phijax.parallel.mesh import build_mesh, init_sharded

TOKENIZER = Path(__file__).resolve().parents[1] / "configs" / "tiny" / "tokenizer.json"
PROMPTS = [[7, 300, 41, 95, 12], [500, 22, 3, 9, 77, 81, 63, 18, 240], [15, 16]]
FULL_LEN = 32  # right-padded length of the no-cache reference passes (one compilation)
GREEDY = Sampling(temperature=0.0)
WARM = Sampling(temperature=1.0)


def build_tiny():
    return Phi4(preset_config("tiny"), rngs=nnx.Rngs(0))


def make_tiny():
    """The tiny model, initialised inside jit (seconds faster than eager NNX initialisation)."""
    graphdef, _ = nnx.split(nnx.eval_shape(build_tiny))
    return nnx.merge(graphdef, jax.jit(lambda: nnx.split(build_tiny())[1])())


@pytest.fixture(scope="module")
def model():
    return make_tiny()


@nnx.jit
def full_logits(model, ids):
    return model(ids)


def logits_without_cache(model, ids: list[int]) -> np.ndarray:
    """Logits [len(ids), vocab] of one full causal pass (right padding cannot reach earlier tokens)."""
    padded = np.zeros((1, FULL_LEN), np.int32)
    padded[0, :len(ids)] = ids
    return np.asarray(full_logits(model, jnp.asarray(padded)))[0, :len(ids)]


def greedy_without_cache(model, prompt: list[int], steps: int) -> list[int]:
    ids = list(prompt)
    for _ in range(steps):
        ids.append(int(np.argmax(logits_without_cache(model, ids)[-1])))
    return ids[len(prompt):]


def test_greedy_sampling_equals_argmax_of_full_forward_passes(model):
    result = generate(model, PROMPTS, max_new_tokens=8, sampling=GREEDY, stop_tokens=())
    for prompt, row in zip(PROMPTS, result.tokens):
        assert row.tolist() == greedy_without_cache(model, prompt, 8)
    assert result.lengths.tolist() == [8, 8, 8]


def test_logprobs_are_the_models_log_probabilities_of_the_sampled_tokens(model):
    result = generate(model, PROMPTS[:2], max_new_tokens=6, sampling=Sampling(temperature=0.7, top_k=20), seed=4,
                      stop_tokens=())
    for prompt, tokens, logprobs in zip(PROMPTS, result.tokens, result.logprobs):
        ids = prompt + tokens.tolist()
        reference = jax.nn.log_softmax(logits_without_cache(model, ids), axis=-1)  # temperature 1, unfiltered
        want = [reference[t - 1, ids[t]] for t in range(len(prompt), len(ids))]
        np.testing.assert_allclose(logprobs, want, rtol=1e-4, atol=1e-4)


def test_cached_logits_equal_full_forward_logits_at_prefill_and_every_decode_step(model):
    prompt_len, steps = 16, 6
    fed = np.random.RandomState(0).randint(3, 1024, (len(PROMPTS), steps))  # forced tokens, not sampled
    tokens = np.zeros((len(PROMPTS), prompt_len), np.int32)
    for row, prompt in enumerate(PROMPTS):
        tokens[row, prompt_len - len(prompt):] = prompt
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
        reference = logits_without_cache(model, prompt + fed[row].tolist())[len(prompt) - 1:]
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
    """bf16 inference weights (`param_dtype: bfloat16`, as tools/bench_generate.py uses) stay bf16 and the
    cache path computes with them: prefill and decode logits are close to the fp32 model's."""
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


def test_a_rows_sample_depends_on_its_row_id_not_on_the_rest_of_the_batch(model):
    alone = generate(model, [PROMPTS[0]], max_new_tokens=8, sampling=WARM, seed=5, row_ids=[7])
    batch = generate(model, [PROMPTS[1], PROMPTS[0], PROMPTS[2]], max_new_tokens=8, sampling=WARM,
                     seed=5, row_ids=[0, 7, 1])
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
    assert stopped.tokens[0, :first + 1].tolist() == free.tokens[0, :first + 1].tolist()
    assert set(stopped.tokens[0, first + 1:].tolist()) == {model.cfg.pad_token_id}
    assert not stopped.logprobs[0, first + 1:].any() and stopped.logprobs[0, first] < 0
    assert stopped.rows(strip=[stop])[0] == free.tokens[0, :first].tolist()
    np.testing.assert_array_equal(stopped.tokens[1], free.tokens[1])


def test_top_k_1_equals_greedy(model):
    greedy = generate(model, PROMPTS, max_new_tokens=6, sampling=GREEDY, stop_tokens=())
    top1 = generate(model, PROMPTS, max_new_tokens=6, sampling=Sampling(temperature=1.5, top_k=1), stop_tokens=())
    np.testing.assert_array_equal(top1.tokens, greedy.tokens)


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


def test_shared_prefix_continuations_equal_sampling_each_row_from_the_full_prompt(model):
    shared = sample_continuations(model, PROMPTS[1], 5, max_new_tokens=8, sampling=WARM, seed=3)
    separate = generate(model, [PROMPTS[1]] * 5, max_new_tokens=8, sampling=WARM, seed=3)
    np.testing.assert_array_equal(shared.tokens, separate.tokens)
    np.testing.assert_array_equal(shared.lengths, separate.lengths)
    assert len({tuple(row) for row in shared.tokens.tolist()}) > 1  # rows draw different samples


def test_sharded_model_on_the_8_device_mesh_samples_what_the_unsharded_model_does(model):
    mesh_cfg = MeshConfig(data=2, fsdp=2, tensor=2)
    mesh = build_mesh(mesh_cfg)
    sharded = init_sharded(build_tiny, mesh, mesh_cfg.rules)
    assert len(sharded.layers.attn.q[...].sharding.device_set) == 8
    got = generate(sharded, PROMPTS, max_new_tokens=6, sampling=WARM, seed=1)  # 3 rows run as 4
    want = generate(model, PROMPTS, max_new_tokens=6, sampling=WARM, seed=1)
    np.testing.assert_array_equal(got.tokens, want.tokens)
    got = sample_continuations(sharded, PROMPTS[0], 3, max_new_tokens=6, sampling=WARM, seed=2)
    want = sample_continuations(model, PROMPTS[0], 3, max_new_tokens=6, sampling=WARM, seed=2)
    np.testing.assert_array_equal(got.tokens, want.tokens)


def test_prompts_of_one_bucket_share_one_compiled_program(model):
    from phijax.generate import _generate_program

    generate(model, [[5] * 3], max_new_tokens=3, sampling=GREEDY)
    compiled = _generate_program._cache_size()
    for length in (1, 7, 16):
        generate(model, [[5] * length], max_new_tokens=3, sampling=GREEDY, seed=length)
    assert _generate_program._cache_size() == compiled
    generate(model, [[5] * 17], max_new_tokens=3, sampling=GREEDY)
    assert _generate_program._cache_size() == compiled + 1


def test_prompt_lengths_are_bucketed_to_powers_of_two():
    assert [bucket_length(n) for n in (1, 16, 17, 64, 65, 1000)] == [16, 16, 32, 64, 128, 1024]


@pytest.mark.parametrize("prompt, max_new, sampling, words", [
    ([], 4, GREEDY, "empty prompt"),
    ([5] * 1020, 8, GREEDY, "exceeds the model's max_seq_len"),
    ([5, 2000], 4, GREEDY, "token ids must be in"),
    ([5], 0, GREEDY, "max_new_tokens must be at least 1"),
])
def test_bad_generation_inputs_are_generation_errors(model, prompt, max_new, sampling, words):
    with pytest.raises(GenerationError, match=words):
        generate(model, [prompt], max_new_tokens=max_new, sampling=sampling)


def test_bad_sampling_settings_are_generation_errors():
    for bad in ({"temperature": -1}, {"top_k": -2}, {"top_p": 0.0}, {"top_p": 1.5}):
        with pytest.raises(GenerationError):
            Sampling(**bad)


# ------------------------------------------------------------------------------ the plugins' Policy
def test_model_policy_complete_is_shared_prefix_sampling_without_the_stop_token(model):
    policy = ModelPolicy(model, load_tokenizer(TOKENIZER))
    assert all(callable(getattr(policy, name)) for name in ("generate", "complete", "decode", "loglikelihood"))
    got = policy.complete(PROMPTS[1], num_samples=5, max_new_tokens=8, temperature=1.0, seed=3)
    want = sample_continuations(model, PROMPTS[1], 5, max_new_tokens=8, sampling=WARM, seed=3,
                                stop_tokens=policy.stop_tokens)
    assert got == want.rows(strip=policy.stop_tokens)
    assert all(stop not in row for row in got for stop in policy.stop_tokens)


def test_model_policy_drives_the_monte_carlo_estimator(model):
    from phijax_plugins.estimators import MonteCarloEstimator

    policy = ModelPolicy(model, load_tokenizer(TOKENIZER))
    prompt = PROMPTS[0]
    estimate = MonteCarloEstimator(num_rollouts=6, max_new_tokens=8)(
        {"prompt_ids": prompt}, prompt + [40], policy=policy, seed=0,
        verifier=lambda completion, problem: len(completion) % 2 == 0,
    )
    assert len(estimate.rollouts) == 6 and 0.0 <= estimate.probability <= 1.0


def test_model_policy_loglikelihood_sums_next_token_log_probs(model):
    tokenizer = load_tokenizer(TOKENIZER)
    policy = ModelPolicy(model, tokenizer)
    context, continuation = tokenizer.encode("12 + 30 ="), tokenizer.encode(" 42")
    ids = context + continuation
    logprobs = jax.nn.log_softmax(logits_without_cache(model, ids), axis=-1)
    want = sum(float(logprobs[t - 1, ids[t]]) for t in range(len(context), len(ids)))
    got = policy.loglikelihood([("12 + 30 =", " 42")])
    assert got == pytest.approx([want], rel=1e-5)


# ------------------------------------------------------------------------------------ the CLI
@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, model):
    """A run directory shaped like training's: config.yaml naming the tokenizer, two checkpoint steps."""
    run = tmp_path_factory.mktemp("run")
    params = nnx.to_pure_dict(nnx.state(model, nnx.Param))
    for step in (3, 12):
        save_model_dir(params, model.cfg, run / "checkpoints" / str(step))
    (run / "config.yaml").write_text(f"model:\n  preset: tiny\ndata:\n  tokenizer: {TOKENIZER}\n")
    return run


def test_cli_generate_prints_replies_from_the_newest_step_of_a_run(run_dir, capsys):
    argv = ["generate", "--checkpoint", str(run_dir), "--prompt", "What is 2+3?", "--max-new-tokens", "6",
            "--n", "2", "--temperature", "1.0", "--top-p", "0.9"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "--- sample 1 of 2 ---" in out and "--- sample 2 of 2 ---" in out
    assert len(out.strip().splitlines()) >= 2


def test_cli_generate_from_a_step_directory_with_an_explicit_tokenizer(run_dir, capsys):
    argv = ["generate", "--checkpoint", str(run_dir / "checkpoints" / "3"), "--prompt", "hi",
            "--tokenizer", str(TOKENIZER), "--max-new-tokens", "4", "--seed", "1"]
    assert main(argv) == 0
    assert capsys.readouterr().out.strip()


@pytest.mark.parametrize("checkpoint, words", [("missing", "not found"), ("empty", "holds neither params")])
def test_cli_generate_bad_checkpoint_is_one_line_and_exit_2(tmp_path, capsys, checkpoint, words):
    (tmp_path / "empty").mkdir()
    assert main(["generate", "--checkpoint", str(tmp_path / checkpoint), "--prompt", "hi"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and words in err


def test_cli_generate_bad_sampling_is_one_line_and_exit_2(run_dir, capsys):
    assert main(["generate", "--checkpoint", str(run_dir), "--prompt", "hi", "--top-p", "2"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "top_p" in err

"""The local policy: loaded sharded from a run dir or a HF directory, the protocols' behaviour (stop
tokens as arguments, lm-eval tokenisation, stop strings), the `local` backend and `phijax generate`."""

import jax
import numpy as np
import pytest
import torch
from flax import nnx
from jax.sharding import NamedSharding
from transformers import Phi3ForCausalLM

from phijax.cli import main
from phijax.config import load_job
from phijax.data import load_tokenizer
from phijax.errors import PhijaxError
from phijax.inference.api import generate, sample_continuations
from phijax.inference.config import PolicySpec
from phijax.inference.policy import LocalPolicy, cut_at_stop, load_policy
from phijax.inference.sampling import Greedy, Sampling
from phijax.model.checkpoint import save_model_dir
from phijax.model.hf import save_hf
from phijax.parallel.config import MeshConfig
from phijax.parallel.mesh import build_mesh, state_shardings
from phijax.plugins.protocols import GENERATE, LOGLIKELIHOOD, TOKENS, TextPolicy, TokenPolicy
from phijax.plugins.testing import make_registry

from .conftest import PROMPTS, TOKENIZER

MESH = MeshConfig(data=2, fsdp=2, tensor=2)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, model):
    """A run directory shaped like training's: config.yaml naming the tokenizer, two checkpoint steps."""
    run = tmp_path_factory.mktemp("run")
    params = nnx.to_pure_dict(nnx.state(model, nnx.Param))
    for step in (3, 12):
        save_model_dir(params, model.cfg, run / "checkpoints" / str(step))
    (run / "config.yaml").write_text(f"model:\n  preset: tiny\ndata:\n  tokenizer: {TOKENIZER}\n")
    return run


@pytest.fixture(scope="module")
def policy(model):
    return LocalPolicy(model, load_tokenizer(TOKENIZER))


@pytest.fixture(scope="module")
def sharded(run_dir):
    return load_policy(run_dir, mesh=MESH)


def test_a_policy_loaded_on_the_mesh_has_every_large_array_sharded_as_the_rules_say(sharded, model):
    assert sharded.source.step == 12 and sharded.name.startswith("local:")
    expected = nnx.to_pure_dict(state_shardings(nnx.state(model), build_mesh(MESH), MESH.rules))
    got = nnx.to_pure_dict(nnx.state(sharded.model, nnx.Param))
    for (path, array), want in zip(jax.tree.leaves_with_path(got), jax.tree.leaves(expected)):
        assert isinstance(array.sharding, NamedSharding) and array.sharding.spec == want.spec, path
        if array.size >= 4096:  # large: split over devices, never a full copy on each
            assert array.addressable_shards[0].data.size < array.size, path
    np.testing.assert_array_equal(np.asarray(sharded.model.embed[...]), np.asarray(model.embed[...]))


def test_the_sharded_policy_samples_and_scores_exactly_what_the_unsharded_one_does(sharded, policy):
    warm = {"temperature": 0.8, "top_p": 0.9, "seed": 5}  # the filtered path; plain sampling: test_api
    assert sharded.complete(PROMPTS[0], num_samples=3, max_new_tokens=6, **warm) == policy.complete(
        PROMPTS[0], num_samples=3, max_new_tokens=6, **warm
    )
    prompts = ["What is 2+3?", "Say hi"]
    assert sharded.generate(prompts, max_new_tokens=6, num_samples=2, **warm) == policy.generate(
        prompts, max_new_tokens=6, num_samples=2, **warm
    )
    requests = [("12 + 30 =", " 42"), ("", "hello"), ("a b ", "c")]
    np.testing.assert_allclose(sharded.loglikelihood(requests), policy.loglikelihood(requests), rtol=1e-5)


def test_a_hf_directory_loads_sharded_and_scores_as_transformers_does(tmp_path, model):
    save_hf(model, tmp_path / "hf")
    hf_policy = load_policy(tmp_path / "hf", tokenizer=TOKENIZER, mesh=MESH)
    assert hf_policy.source.kind == "hf"
    reference = Phi3ForCausalLM.from_pretrained(tmp_path / "hf", dtype=torch.float32).eval()
    requests = [([7, 300, 41, 95], [12, 8]), ([500, 22, 3], [9, 77, 81, 63]), ([15], [16])]
    got = hf_policy.loglikelihood_ids(requests)
    for (context, continuation), (total, greedy) in zip(requests, got):
        ids = torch.tensor([context + continuation])
        with torch.no_grad():
            logprobs = torch.log_softmax(reference(ids).logits[0].double(), dim=-1).numpy()
        positions = range(len(context), len(context) + len(continuation))
        assert total == pytest.approx(sum(logprobs[t - 1, ids[0, t]] for t in positions), rel=1e-4)
        assert greedy == all(logprobs[t - 1].argmax() == ids[0, t] for t in positions)


def test_the_policy_satisfies_both_protocols_and_states_its_capabilities(policy):
    assert isinstance(policy, TokenPolicy) and isinstance(policy, TextPolicy)
    assert policy.capabilities == {GENERATE, LOGLIKELIHOOD, TOKENS}
    tok = policy.tokenizer
    assert set(policy.stop_tokens) == {tok.eos_id, tok.eod_id, policy.model.cfg.eos_token_id}
    assert policy.eot_token_id == tok.eod_id


def test_complete_is_shared_prefix_sampling_without_the_stop_token_and_never_mutates(policy, model):
    before = policy.stop_tokens
    free = policy.complete(PROMPTS[1], num_samples=5, max_new_tokens=8, temperature=1.0, seed=3, stop_tokens=())
    want = sample_continuations(model, PROMPTS[1], 5, max_new_tokens=8, sampling=Sampling(1.0), seed=3, stop_tokens=())
    assert free == want.rows()
    stop = free[0][2]
    stopped = policy.complete(PROMPTS[1], num_samples=5, max_new_tokens=8, seed=3, stop_tokens=[stop])
    assert stopped[0] == free[0][: free[0].index(stop)] and policy.stop_tokens == before


def test_loglikelihood_tokenises_as_lm_eval_does(policy):
    tok = policy.tokenizer
    context, continuation = policy.encode_pair("Question: 2+2 = ", "4")
    assert context == tok.encode("Question: 2+2 =") and context + continuation == tok.encode("Question: 2+2 = 4")
    assert policy.encode_pair("", "hello") == ([tok.eod_id], tok.encode("hello"))
    ((text, text_greedy),) = policy.loglikelihood([("Question: 2+2 = ", "4")])
    ((ids, ids_greedy),) = policy.loglikelihood_ids([(context, continuation)])
    assert (text, text_greedy) == (ids, ids_greedy)


def test_generate_cuts_at_stop_strings_and_does_not_depend_on_batching(policy, model):
    prompts = ["What is 2+3?", "Say hi", "Count"]
    small = LocalPolicy(model, policy.tokenizer, batch_size=1)
    full = policy.generate(prompts, max_new_tokens=8, temperature=1.0, num_samples=2, seed=4, chat=False)
    assert small.generate(prompts, max_new_tokens=8, temperature=1.0, num_samples=2, seed=4, chat=False) == full
    assert [len(samples) for samples in full] == [2, 2, 2]
    cut = full[0][0][2:4]
    stopped = policy.generate(prompts, max_new_tokens=8, temperature=1.0, num_samples=2, seed=4, chat=False, stop=[cut])
    assert stopped[0][0] == full[0][0][: full[0][0].index(cut)]
    assert cut_at_stop("a. b. c", [" c", ". "]) == "a" and cut_at_stop("abc", []) == "abc"


def test_the_local_backend_builds_the_policy_from_a_policy_spec(run_dir):
    spec = load_job(PolicySpec, [], [f"checkpoint={run_dir}", "batch_size=4"])
    assert spec.options == {"batch_size": 4}
    registry = make_registry()
    made = registry.create("backends", spec.backend, mesh=MESH, **spec.factory_options())
    assert isinstance(made, LocalPolicy) and made.batch_size == 4 and made.source.step == 12
    with pytest.raises(PhijaxError, match="not an option of the local backend"):
        registry.create("backends", "local", mesh=MESH, checkpoint=str(run_dir), top_q=3)


# ------------------------------------------------------------------------------------ the CLI
def test_cli_generate_prints_replies_and_the_step_it_loaded(run_dir, capsys):
    argv = [
        "generate",
        "--checkpoint",
        str(run_dir),
        "--prompt",
        "What is 2+3?",
        "--max-new-tokens",
        "6",
        "--n",
        "2",
        "--temperature",
        "1.0",
        "--top-p",
        "0.9",
    ]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert "--- sample 1 of 2 ---" in captured.out and "--- sample 2 of 2 ---" in captured.out
    assert "(step 12)" in captured.err


def test_cli_generate_from_a_step_directory_with_an_explicit_tokenizer(run_dir, capsys):
    argv = [
        "generate",
        "--checkpoint",
        str(run_dir / "checkpoints" / "3"),
        "--prompt",
        "hi",
        "--tokenizer",
        str(TOKENIZER),
        "--max-new-tokens",
        "4",
        "--seed",
        "1",
        "--top-k",
        "5",
    ]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert captured.out.strip() and "(step 3)" in captured.err


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


def test_tokens_used_counts_prompt_and_generated_tokens(policy, model):
    """The synth summary's `tokens` for a local backend: a prefix once, each sample's tokens."""
    fresh = LocalPolicy(model, policy.tokenizer)
    rows = fresh.complete(PROMPTS[1], num_samples=5, max_new_tokens=8, temperature=1.0, seed=3, stop_tokens=())
    assert [len(r) for r in rows] == [8] * 5 and fresh.tokens_used == len(PROMPTS[1]) + 40
    before, ids = fresh.tokens_used, fresh.encode("Count")
    fresh.generate(["Count"], max_new_tokens=6, chat=False)
    made = generate(model, [ids], max_new_tokens=6, sampling=Greedy(), stop_tokens=fresh.stop_tokens)
    assert fresh.tokens_used - before == len(ids) + len(made.rows(strip=fresh.stop_tokens)[0])

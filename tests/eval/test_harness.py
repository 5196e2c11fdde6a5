"""PhijaxLM against lm-eval's own `hf` backend on the same tiny random Phi-3 directory (the reference)."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

pytest.importorskip("lm_eval")

import lm_eval  # noqa: E402
from lm_eval.api.instance import Instance  # noqa: E402
from lm_eval.api.registry import get_model  # noqa: E402
from lm_eval.tasks import TaskManager  # noqa: E402

import phijax.eval  # noqa: E402,F401 - registers `phijax` with lm-eval
from phijax.eval.harness import Lockstep, PhijaxLM, cut_at_stop  # noqa: E402

TASKS = ["tiny_mc", "tiny_gen", "tiny_rolling"]


def hf_lm(path: Path):
    return get_model("hf").create_from_arg_string(f"pretrained={path},batch_size=4,dtype=float32,device=cpu")


@pytest.fixture(scope="module")
def both(hf_dir: Path) -> tuple:
    return hf_lm(hf_dir), PhijaxLM.create_from_arg_string(f"pretrained={hf_dir},batch_size=8")


@pytest.fixture(scope="module")
def evaluated(both, task_dir: Path) -> dict:
    manager = TaskManager(include_path=str(task_dir), include_defaults=False)
    return {
        name: lm_eval.simple_evaluate(model=lm, tasks=TASKS, task_manager=manager, log_samples=True, bootstrap_iters=0)
        for name, lm in zip(("hf", "phijax"), both)
    }


def responses(out: dict, task: str) -> list:
    return [r for sample in out["samples"][task] for r in sample["filtered_resps"]]


def test_phijax_is_registered_with_lm_eval_and_built_from_an_arg_string(hf_dir: Path) -> None:
    assert get_model("phijax") is PhijaxLM
    lm = PhijaxLM.create_from_arg_string(f"pretrained={hf_dir},batch_size=3")
    assert lm.batch_size == 3 and lm.max_length == 64


def test_multiple_choice_loglikelihoods_and_greedy_flags_match_hf(evaluated: dict) -> None:
    ref, got = responses(evaluated["hf"], "tiny_mc"), responses(evaluated["phijax"], "tiny_mc")
    assert len(ref) == len(got) == 16
    assert max(abs(a[0] - b[0]) for a, b in zip(ref, got)) < 1e-4
    assert [a[1] for a in ref] == [b[1] for b in got]
    assert evaluated["hf"]["results"]["tiny_mc"]["acc,none"] == evaluated["phijax"]["results"]["tiny_mc"]["acc,none"]


def test_greedy_generations_are_identical_to_hf(evaluated: dict) -> None:
    ref, got = responses(evaluated["hf"], "tiny_gen"), responses(evaluated["phijax"], "tiny_gen")
    assert ref == got and any(ref)


def test_rolling_loglikelihoods_match_hf_over_several_windows(evaluated: dict) -> None:
    ref, got = responses(evaluated["hf"], "tiny_rolling"), responses(evaluated["phijax"], "tiny_rolling")
    assert max(abs(a - b) for a, b in zip(ref, got)) < 1e-3


def test_empty_contexts_trailing_spaces_and_greedy_continuations_match_hf(both) -> None:
    hf, ours = both
    pairs = [("", " hello world"), ("Question: why? ", "Because"), ("The sky", " is"), ("a", "b")]
    requests = [Instance("loglikelihood", {}, pair, i) for i, pair in enumerate(pairs)]
    ref, got = hf.loglikelihood(requests), ours.loglikelihood(requests)
    assert max(abs(a[0] - b[0]) for a, b in zip(ref, got)) < 1e-4
    assert [a[1] for a in ref] == [b[1] for b in got]
    context = ours.tok_encode("The sky")  # token level: a continuation that is the greedy one
    greedy = ours.policy.complete(context, num_samples=1, max_new_tokens=3, temperature=0.0)[0]
    token_requests = [(None, context, greedy), (None, context, greedy[:1]), (None, context, [greedy[0] + 1])]
    ref, got = hf._loglikelihood_tokens(token_requests), ours._loglikelihood_tokens(token_requests)
    assert [a[1] for a in ref] == [b[1] for b in got] == [True, True, False]
    assert max(abs(a[0] - b[0]) for a, b in zip(ref, got)) < 1e-4


def test_generation_is_cut_at_the_first_until_string() -> None:
    assert cut_at_stop("abc\nQ: def", ["Q:", "\n"]) == "abc"
    assert cut_at_stop("abc", ["", "x"]) == "abc"


class _Recorder:
    def __init__(self) -> None:
        self.calls: list = []

    def loglikelihood_ids(self, requests):
        self.calls.append(requests)
        return [(0.0, True)] * len(requests)


def test_lockstep_followers_make_the_calls_the_leader_announces() -> None:
    wire: list[bytes] = []
    leader = Lockstep(lambda payload: wire.append(payload) or payload, leader=True, active=True)
    policy = _Recorder()
    leader.call(policy, "loglikelihood_ids", [([1], [2])])
    leader.release()
    follower_policy, messages = _Recorder(), iter(wire)
    follower = Lockstep(lambda payload: next(messages), leader=False, active=True)
    assert follower.follow(follower_policy) == 1
    assert follower_policy.calls == policy.calls
    assert pickle.loads(wire[-1])[0] == Lockstep.STOP


def test_token_loglikelihoods_are_chunked_by_distinct_contexts_as_hf_batches_rows() -> None:
    from phijax.eval.harness import _chunks

    pairs = [([1, 2], [3]), ([1, 2], [4]), ([5], [6]), ([5], [7]), ([5], [8]), ([9], [1])]
    by_context = _chunks(pairs, 2, key=lambda pair: tuple(pair[0]))
    assert [len(c) for c in by_context] == [5, 1]  # both choices of [1, 2] and all three of [5] together
    assert _chunks(pairs, 2, key=None) == [pairs[0:2], pairs[2:4], pairs[4:6]]

"""The built-in `monte_carlo` success estimator, on a scripted policy, end to end through PTS."""

from __future__ import annotations

import random

import phijax_plugins.estimators as builtin_estimators
import phijax_plugins.verifiers as builtin_verifiers
import pytest

from phijax.errors import PhijaxError
from phijax.plugins.testing import make_registry
from phijax.pts import (
    PivotalToken,
    Rollout,
    alternative_token,
    pivotal_token_search,
    token_pairs,
)
from phijax.verify import ProblemError

PROMPT = [100, 101]  # "What is 2+3?"
WORDS = {100: "What is", 101: " 2+3?", 3: " hmm", 4: " the answer is ", 1: "5", 2: "6"}
TEMPLATE = [3] * 10 + [4, None] + [3] * 5  # None: the answer digit, 5 (right) or 6 (wrong)
ANSWER_AT = TEMPLATE.index(None)


class ScriptedPolicy:
    """A `Policy` that writes TEMPLATE, choosing the answer digit at random (5 or 6, even odds)."""

    def __init__(self):
        self.calls = 0

    def complete(
        self, prefix_ids, *, num_samples, max_new_tokens, temperature=1.0, top_p=1.0, seed=0, stop_tokens=None
    ):
        self.calls += 1
        self.stop_tokens_seen = stop_tokens
        rng = random.Random(seed)
        done = len(prefix_ids) - len(PROMPT)
        return [
            [t if t is not None else rng.choice([1, 2]) for t in TEMPLATE[done:]][:max_new_tokens]
            for _ in range(num_samples)
        ]

    def decode(self, ids):
        return "".join(WORDS[i] for i in ids)


@pytest.fixture
def registry():
    return make_registry(builtin_estimators, builtin_verifiers, builtins=False)


def test_estimate_holds_the_rollouts_and_judges_only_the_response(registry):
    estimator = registry.create("reward_estimators", "monte_carlo", num_rollouts=200)
    judged = []

    def verifier(response, problem):
        judged.append(response)
        return registry.create("verifiers", "math_answer")(response, problem)

    problem = {"prompt_ids": PROMPT, "answer": "5"}
    before = estimator(problem, PROMPT + [3] * ANSWER_AT, policy=ScriptedPolicy(), verifier=verifier, seed=1)
    assert len(before.rollouts) == 200 and {r.first_token for r in before.rollouts} == {1, 2}
    assert all(r.success == (r.first_token == 1) for r in before.rollouts)
    assert 0.4 < before.probability < 0.6
    assert all(text.startswith(" hmm") and "What is" not in text for text in judged)
    after = estimator(problem, PROMPT + TEMPLATE[:ANSWER_AT] + [1], policy=ScriptedPolicy(), verifier=verifier, seed=2)
    assert after.probability == 1.0 and {r.first_token for r in after.rollouts} == {3}


def test_pts_with_the_monte_carlo_estimator_finds_the_answer_token_and_its_pair(registry):
    estimator = registry.create("reward_estimators", "monte_carlo", num_rollouts=64)
    verifier = registry.create("verifiers", "math_answer")
    policy, problem = ScriptedPolicy(), {"prompt_ids": PROMPT, "answer": "5"}
    completion = [t if t is not None else 1 for t in TEMPLATE]

    def success_probability(prefix):
        return estimator(problem, PROMPT + list(prefix), policy=policy, verifier=verifier, seed=len(prefix))

    result = pivotal_token_search(completion, success_probability, p_gap=0.2)
    assert [(t.index, t.token) for t in result.pivotal_tokens] == [(ANSWER_AT, 1)]
    assert policy.calls == result.num_estimates <= 2 + 5
    (pair,) = token_pairs(completion, result)
    assert (pair.chosen, pair.rejected) == (1, 2) and pair.p_chosen == 1.0 and pair.p_rejected == 0.0


def test_problem_must_say_where_the_response_starts(registry):
    estimator = registry.create("reward_estimators", "monte_carlo")
    kwargs = {"policy": ScriptedPolicy(), "verifier": lambda response, problem: True, "seed": 0}
    with pytest.raises(ProblemError, match="no 'prompt_ids'"):
        estimator({"answer": "5"}, PROMPT + [3], **kwargs)
    with pytest.raises(ProblemError, match="does not start with"):
        estimator({"prompt_ids": [7, 7], "answer": "5"}, PROMPT + [3], **kwargs)


def test_bad_options_are_refused(registry):
    with pytest.raises(PhijaxError, match="num_rollouts"):
        registry.create("reward_estimators", "monte_carlo", num_rollouts=0)


def test_rollouts_that_end_at_once_count_but_are_never_an_alternative():
    pivot = PivotalToken(index=4, token=1, p_before=0.5, p_after=1.0)
    assert alternative_token(pivot, [Rollout(-1, False)] * 5) is None
    assert alternative_token(pivot, [Rollout(-1, False)] * 5 + [Rollout(2, False)]) == (2, 0.0)


def test_rollouts_end_at_the_stop_tokens_the_driver_gives(registry):
    estimator = registry.create("reward_estimators", "monte_carlo", num_rollouts=4, stop_tokens=[9, 7])
    policy = ScriptedPolicy()
    estimator({"prompt_ids": PROMPT, "answer": "5"}, PROMPT, policy=policy, verifier=lambda r, p: True, seed=0)
    assert policy.stop_tokens_seen == (9, 7)


def test_monte_carlo_refuses_a_policy_without_token_ids_in_one_line():
    from phijax.errors import PhijaxError
    from phijax.plugins.registry import load_registry

    class TextOnly:
        capabilities = frozenset({"generate"})
        name = "http:text-only"

    estimator = load_registry({}, third_party=False).create("reward_estimators", "monte_carlo", num_rollouts=2)
    with pytest.raises(PhijaxError, match="cannot take|token-id prompts") as err:
        estimator({"query": "q", "answer": "1"}, [1, 2], policy=TextOnly(), verifier=lambda c, p: True, seed=0)
    assert "text-only" in str(err.value) and len(str(err.value).splitlines()) == 1

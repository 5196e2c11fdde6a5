"""The PTS loop: success band, shared estimates, pair records, stats — on a scripted policy."""

from __future__ import annotations

import json
import random

import phijax_plugins.estimators as builtin_estimators
import phijax_plugins.verifiers as builtin_verifiers

from phijax.plugins.testing import make_registry
from phijax.pts.pairs import PTSSettings, PTSStats, prefix_seed, pts_pairs

WORDS = {3: " hmm", 4: " the answer is ", 1: "5", 2: "6", 100: "Q:"}
TEMPLATE = [3] * 6 + [4, None] + [3] * 3  # None: the answer digit, 5 or 6 at even odds
ANSWER_AT = TEMPLATE.index(None)


class ScriptedPolicy:
    """Writes TEMPLATE after any prompt, drawing the answer digit from the seed."""

    def __init__(self, prompt_len: int):
        self.prompt_len, self.calls = prompt_len, 0

    def complete(
        self, prefix_ids, *, num_samples, max_new_tokens, temperature=1.0, top_p=1.0, seed=0, stop_tokens=None
    ):
        self.calls += 1
        rng, done = random.Random(seed), len(prefix_ids) - self.prompt_len
        return [[t if t is not None else rng.choice([1, 2]) for t in TEMPLATE[done:]] for _ in range(num_samples)]

    def decode(self, ids):
        return "".join(WORDS[i] for i in ids)


DEFAULT = PTSSettings(num_solutions=4, seed=3)


def run(problems, settings=DEFAULT):
    registry = make_registry(builtin_estimators, builtin_verifiers, builtins=False)
    stats, policy = PTSStats(), ScriptedPolicy(prompt_len=1)
    records = list(
        pts_pairs(
            problems,
            policy=policy,
            prompt_ids=lambda problem: [100],
            estimator=registry.create("reward_estimators", "monte_carlo", num_rollouts=64),
            verifier=registry.create("verifiers", "math_answer"),
            settings=settings,
            stats=stats,
        )
    )
    return records, stats, policy


def test_pairs_come_only_from_queries_in_the_success_band():
    problems = [{"id": "five", "answer": "5"}, {"id": "seven", "answer": "7"}, {"id": "six", "answer": "6"}]
    records, stats, policy = run(problems)
    assert (stats.problems, stats.in_band, stats.solutions) == (3, 2, 8)  # "seven": p = 0, skipped
    assert stats.pivotal_tokens == stats.pairs == len(records) == 8  # one per solution
    assert policy.calls == stats.estimates + stats.in_band  # estimates + one solution batch each
    for record in records:
        assert json.loads(json.dumps(record)) == record
        assert record["pivotal_index"] == ANSWER_AT and record["prompt_ids"][0] == 100
        right = "1" if record["problem_id"] == "five" else "2"
        assert (str(record["chosen_id"]), record["p_chosen"], record["p_rejected"]) == (right, 1.0, 0.0)
        assert record["prompt"] == "Q:" + " hmm" * 6 + " the answer is "


def test_estimates_are_shared_across_a_problems_solutions():
    _, stats, _ = run([{"id": "five", "answer": "5"}], PTSSettings(num_solutions=8, seed=0))
    # 8 solutions differ only in the answer digit: the shared prefixes are estimated once, and each
    # digit adds at most a handful of new prefixes.
    assert stats.solutions == 8 and stats.estimates <= 12


def test_runs_are_reproducible_and_seeds_depend_on_the_prefix():
    problems = [{"id": "five", "answer": "5"}]
    assert run(problems)[0] == run(problems)[0]
    assert prefix_seed(0, 0, [1, 2]) != prefix_seed(0, 0, [2, 1]) != prefix_seed(1, 0, [2, 1])

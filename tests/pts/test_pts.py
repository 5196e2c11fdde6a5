"""Pivotal Token Search against a brute-force per-token scan on synthetic success curves."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from phijax.pts import (
    InvalidEstimateError,
    PivotalToken,
    Rollout,
    SuccessEstimate,
    TokenPair,
    alternative_token,
    in_success_band,
    pair_record,
    pivotal_token_search,
    token_pairs,
)

GAP = 0.2


def step_curve(n: int, steps: dict[int, float], base: float, drift: float = 0.0) -> list[float]:
    """[n + 1] p(success | first L tokens) for L = 0..n: token i adds steps[i], plus a slow drift.

    The drift (spread evenly, `drift` in total) keeps segments from being exactly flat.
    """
    p = [base]
    for i in range(n):
        p.append(p[-1] + steps.get(i, 0.0) + drift / n)
    assert all(0.0 <= x <= 1.0 for x in p)
    return p


def brute_force_pivots(curve: list[float], gap: float) -> set[int]:
    """The ground truth: every position whose one token moves p by at least gap (n estimates)."""
    return {i for i in range(len(curve) - 1) if abs(curve[i + 1] - curve[i]) >= gap}


class CountingEstimator:
    """p(prefix) read off a curve; records every call so memoisation can be checked."""

    def __init__(self, curve: list[float]):
        self.curve = curve
        self.calls: list[tuple[int, ...]] = []

    def __call__(self, prefix: tuple[int, ...]) -> float:
        self.calls.append(prefix)
        return self.curve[len(prefix)]


def monotone_case(n: int, k: int, seed: int) -> tuple[list[int], list[float]]:
    rng = random.Random(seed)
    positions = rng.sample(range(n), k)
    steps = {i: rng.uniform(0.21, 0.22) for i in positions}  # k <= 4 rises of >= 0.21 fit in [0, 1]
    return [rng.randrange(1000) for _ in range(n)], step_curve(n, steps, base=0.02, drift=0.05)


CASES = [(n, k, seed) for n in (64, 256, 1024, 4096) for k in (1, 2, 3, 4) for seed in range(3)]


@pytest.mark.parametrize("n,k,seed", CASES)
def test_finds_exactly_the_planted_pivots_on_monotone_curves_with_about_k_log2_n_estimates(n, k, seed):
    tokens, curve = monotone_case(n, k, seed)
    result = pivotal_token_search(tokens, CountingEstimator(curve), p_gap=GAP)
    truth = brute_force_pivots(curve, GAP)
    assert len(truth) == k
    assert {t.index for t in result.pivotal_tokens} == truth
    assert result.num_estimates <= k * math.ceil(math.log2(n)) + 2 <= 2 * k * math.ceil(math.log2(n)) + 2
    assert result.num_estimates < n / 4 or n == 64


def test_decreasing_curve_pivots_are_found_with_their_probabilities():
    n = 500
    tokens = list(range(n))
    curve = step_curve(n, {37: -0.3, 400: -0.25}, base=0.9)
    result = pivotal_token_search(tokens, CountingEstimator(curve), p_gap=GAP)
    assert [t.index for t in result.pivotal_tokens] == [37, 400]
    first = result.pivotal_tokens[0]
    assert first.token == 37
    assert first.p_before == pytest.approx(0.9) and first.p_after == pytest.approx(0.6)
    assert first.delta == pytest.approx(-0.3)


def test_each_prefix_is_estimated_once_and_counted():
    tokens, curve = monotone_case(1024, 3, seed=7)
    estimator = CountingEstimator(curve)
    result = pivotal_token_search(tokens, estimator, p_gap=GAP)
    assert len(estimator.calls) == len(set(estimator.calls)) == result.num_estimates
    assert set(result.estimates) == set(estimator.calls)
    assert () in result.estimates and tuple(tokens) in result.estimates


@pytest.mark.parametrize("seed", range(5))
def test_logprob_split_finds_the_same_pivots(seed):
    rng = random.Random(100 + seed)
    tokens, curve = monotone_case(2048, 3, seed=100 + seed)
    logprobs = [-rng.expovariate(1.0) for _ in tokens]
    by_count = pivotal_token_search(tokens, CountingEstimator(curve), p_gap=GAP)
    by_logprob = pivotal_token_search(tokens, CountingEstimator(curve), p_gap=GAP, logprobs=logprobs)
    assert by_logprob.pivotal_tokens == by_count.pivotal_tokens


def test_logprob_split_is_cheaper_when_pivots_are_the_surprising_tokens():
    n = 4096
    steps = {300: 0.3, 2900: 0.3}
    curve = step_curve(n, steps, base=0.1)
    logprobs = [-6.0 if i in steps else -0.01 for i in range(n)]
    by_count = pivotal_token_search(range(n), CountingEstimator(curve), p_gap=GAP)
    by_logprob = pivotal_token_search(range(n), CountingEstimator(curve), p_gap=GAP, logprobs=logprobs)
    assert [t.index for t in by_logprob.pivotal_tokens] == [300, 2900]
    assert by_logprob.num_estimates < by_count.num_estimates


def test_rise_and_fall_inside_one_segment_is_missed_as_documented():
    # Documented limitation: p(prefix) == p(prefix + T) for the whole completion, so Subdivide stops
    # at the top segment although tokens 100 and 900 each move p by 0.4.
    n = 1024
    curve = step_curve(n, {100: 0.4, 900: -0.4}, base=0.3)
    result = pivotal_token_search(range(n), CountingEstimator(curve), p_gap=GAP)
    assert brute_force_pivots(curve, GAP) == {100, 900}
    assert result.pivotal_tokens == ()
    assert result.num_estimates == 2


@pytest.mark.parametrize("seed", range(20))
def test_non_monotone_curves_never_give_false_pivots(seed):
    rng = random.Random(seed)
    n = rng.choice([50, 300, 1000])
    p, steps = 0.5, {}
    for i in sorted(rng.sample(range(n), 6)):
        delta = rng.choice([-1, 1]) * rng.uniform(0.1, 0.35)
        if 0.0 <= p + delta <= 1.0:
            steps[i], p = delta, p + delta
    curve = step_curve(n, steps, base=0.5)
    found = {t.index for t in pivotal_token_search(range(n), CountingEstimator(curve), GAP).pivotal_tokens}
    assert found <= brute_force_pivots(curve, GAP)


def test_numpy_probabilities_are_accepted():
    result = pivotal_token_search([4, 5], lambda prefix: np.float32(0.1 + 0.4 * len(prefix)))
    assert [t.index for t in result.pivotal_tokens] == [0, 1]
    assert isinstance(result.pivotal_tokens[0].p_after, float)


def test_short_completions():
    assert pivotal_token_search([], lambda prefix: 0.5).pivotal_tokens == ()
    result = pivotal_token_search([7], lambda prefix: 0.2 + 0.6 * len(prefix))
    assert result.pivotal_tokens == (PivotalToken(0, 7, 0.2, 0.8),)
    assert result.num_estimates == 2


def test_bad_estimates_and_arguments_are_rejected_with_the_fix():
    for bad in (1.5, -0.1, float("nan"), None, "0.5x"):
        with pytest.raises(InvalidEstimateError, match=r"probability in \[0, 1\]"):
            pivotal_token_search([1, 2, 3], lambda prefix, bad=bad: bad)
    with pytest.raises(ValueError, match="one log-probability per completion token"):
        pivotal_token_search([1, 2, 3], lambda prefix: 0.5, logprobs=[-1.0])
    with pytest.raises(ValueError, match="finite log-probability"):
        pivotal_token_search([1, 2], lambda prefix: 0.5, logprobs=[-1.0, 0.5])
    with pytest.raises(ValueError, match="p_gap"):
        pivotal_token_search([1, 2], lambda prefix: 0.5, p_gap=0.0)
    with pytest.raises(InvalidEstimateError, match="at least one"):
        SuccessEstimate.from_rollouts([])


def test_success_band():
    assert in_success_band(0.2) and in_success_band(0.5) and in_success_band(0.8)
    assert not in_success_band(0.1) and not in_success_band(0.95)


def rollouts(spec: dict[int, tuple[int, int]]) -> list[Rollout]:
    """{first_token: (successes, failures)} -> rollouts."""
    out = []
    for token, (wins, losses) in spec.items():
        out += [Rollout(token, True)] * wins + [Rollout(token, False)] * losses
    return out


def test_alternative_prefers_the_token_that_truly_lowers_p_over_the_most_frequent_failure():
    pivot = PivotalToken(index=3, token=5, p_before=0.5, p_after=0.9)
    # Token 1 fails most often in absolute terms but succeeds half the time (no signal);
    # token 2 always fails. The pivot's own rollouts (token 5) are never an alternative.
    found = alternative_token(pivot, rollouts({1: (10, 10), 2: (0, 4), 5: (0, 3), 3: (0, 1)}))
    assert found == (2, 0.0)
    # A token seen once does not beat one seen often with nearly the same rate.
    assert alternative_token(pivot, rollouts({3: (0, 1), 4: (1, 9)}))[0] == 4
    # Nothing went the other way: no pair.
    assert alternative_token(pivot, rollouts({1: (3, 0), 5: (0, 2)})) is None


def test_token_pairs_choose_the_pivot_when_it_helps_and_reject_it_when_it_hurts():
    tokens = [10, 11, 12, 13, 14, 15, 16, 17]
    curve = {0: 0.2, 1: 0.2, 2: 0.9, 3: 0.9, 4: 0.9, 5: 0.6, 6: 0.6, 7: 0.6, 8: 0.6}
    # Rollouts at each prefix: the pivot's own token succeeds as p_after says, others go the other way.
    at_prefix = {1: rollouts({11: (9, 1), 20: (0, 5), 21: (3, 3)}), 4: rollouts({14: (2, 3), 30: (8, 0), 31: (1, 1)})}

    def estimate(prefix):
        return SuccessEstimate(curve[len(prefix)], tuple(at_prefix.get(len(prefix), ())))

    result = pivotal_token_search(tokens, estimate, p_gap=GAP)
    assert [t.index for t in result.pivotal_tokens] == [1, 4]
    helps, hurts = token_pairs(tokens, result)
    assert (helps.prefix, helps.chosen, helps.rejected) == ((10,), 11, 20)
    assert (helps.p_chosen, helps.p_rejected, helps.pivotal_index) == (0.9, 0.0, 1)
    assert (hurts.prefix, hurts.chosen, hurts.rejected) == ((10, 11, 12, 13), 30, 14)
    assert (hurts.p_chosen, hurts.p_rejected) == (1.0, 0.6)


def test_float_estimators_give_pivots_but_no_pairs():
    curve = [0.1, 0.1, 0.6, 0.6]
    result = pivotal_token_search([1, 2, 3], lambda prefix: curve[len(prefix)])
    assert len(result.pivotal_tokens) == 1
    assert token_pairs([1, 2, 3], result) == []


class ToyPolicy:
    """A policy whose answer is decided by one token: at position `decision` it writes 1 (right,
    then correct w.p. 0.9) or 2 (wrong, correct w.p. 0.1) with equal odds; elsewhere filler 3..9.

    p(success | prefix) is 0.5 before the decision and 0.9 / 0.1 after it, so the decision token is
    the one pivotal token. Rollouts are sampled with a seeded rng, as a Monte-Carlo estimator would.
    """

    def __init__(self, n: int, decision: int, seed: int):
        self.n, self.decision, self.rng = n, decision, random.Random(seed)

    def token_at(self, position: int) -> int:
        return self.rng.choice([1, 2]) if position == self.decision else self.rng.randrange(3, 10)

    def rollout(self, prefix: tuple[int, ...]) -> Rollout:
        first = self.token_at(len(prefix)) if len(prefix) < self.n else -1  # -1: end of sequence
        if len(prefix) > self.decision:
            chosen = prefix[self.decision]
        else:
            chosen = first if len(prefix) == self.decision else self.rng.choice([1, 2])
        return Rollout(first, self.rng.random() < (0.9 if chosen == 1 else 0.1))

    def estimate(self, prefix: tuple[int, ...], num_rollouts: int = 200) -> SuccessEstimate:
        return SuccessEstimate.from_rollouts([self.rollout(prefix) for _ in range(num_rollouts)])


@pytest.mark.parametrize("seed", range(3))
def test_monte_carlo_estimates_find_the_decision_token_and_pair_it_with_the_wrong_choice(seed):
    policy = ToyPolicy(n=200, decision=123, seed=seed)
    tokens = [policy.token_at(i) for i in range(200)]
    tokens[123] = 1
    result = pivotal_token_search(tokens, policy.estimate, p_gap=GAP)
    assert [(t.index, t.token) for t in result.pivotal_tokens] == [(123, 1)]
    assert result.num_estimates <= 2 + math.ceil(math.log2(200))
    (pair,) = token_pairs(tokens, result)
    assert (pair.chosen, pair.rejected, pair.prefix) == (1, 2, tuple(tokens[:123]))
    assert pair.p_chosen > 0.8 and pair.p_rejected < 0.2 and 0.4 < pair.p_before < 0.6


def test_pair_record_is_json_with_prompt_ids_and_text():
    import json

    pair = TokenPair(prefix=(5, 6), chosen=7, rejected=8, p_before=0.5, p_chosen=0.9, p_rejected=0.1)
    record = pair_record(pair, query_ids=[1, 2], decode=lambda ids: " ".join(f"t{i}" for i in ids))
    assert json.loads(json.dumps(record)) == {
        "prompt_ids": [1, 2, 5, 6],
        "prompt": "t1 t2 t5 t6",
        "chosen_id": 7,
        "chosen": "t7",
        "rejected_id": 8,
        "rejected": "t8",
        "pivotal_index": 2,
        "p_before": 0.5,
        "p_chosen": 0.9,
        "p_rejected": 0.1,
    }

"""From problems to PTS DPO pairs: the loop behind `phijax pts`, written against the `TokenPolicy` protocol.

For each problem: estimate p(success | query) and keep the query only inside the success band;
sample solutions; run Pivotal Token Search on each; yield one JSON-ready record per pair. Estimates
are shared by all solutions of a problem (they share at least the empty prefix), and each is seeded
from the prefix itself, so a run is reproducible and a prefix gets the same estimate wherever met.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from phijax.plugins.protocols import TokenPolicy
from phijax.pts import (
    SUCCESS_BAND,
    Prefix,
    SuccessEstimate,
    in_success_band,
    pair_record,
    pivotal_token_search,
    token_pairs,
)


@dataclass
class PTSStats:
    """Counts for the run's report: how many problems, solutions, pivots, pairs and estimates."""

    problems: int = 0
    in_band: int = 0
    solutions: int = 0
    pivotal_tokens: int = 0
    pairs: int = 0
    estimates: int = 0  # estimator calls, i.e. distinct (problem, prefix) pairs


@dataclass(frozen=True)
class PTSSettings:
    """Knobs of the loop (the estimator's own options, e.g. rollouts per estimate, are its own)."""

    num_solutions: int = 4
    max_new_tokens: int = 1024
    temperature: float = 1.0
    p_gap: float = 0.2
    band: tuple[float, float] = SUCCESS_BAND
    seed: int = 0
    stop_tokens: tuple[int, ...] | None = None  # ids that end a solution; None: the policy's own


def prefix_seed(seed: int, problem_index: int, prefix: Sequence[int]) -> int:
    """A 31-bit seed fixed by the run seed, the problem and the prefix's token ids."""
    data = b"%d:%d:" % (seed, problem_index) + b",".join(b"%d" % t for t in prefix)
    return zlib.crc32(data) & 0x7FFFFFFF


def pts_pairs(
    problems: Iterable[dict[str, Any]],
    *,
    policy: TokenPolicy,
    prompt_ids: Callable[[dict], list[int]],
    estimator: Any,
    verifier: Any,
    settings: PTSSettings = PTSSettings(),
    stats: PTSStats | None = None,
    first_index: int = 0,
) -> Iterator[dict[str, Any]]:
    """Yield one pair record (`pts.pair_record` plus `problem_index`, `problem_id`) per PTS pair.

    problems: records with the query and what the verifier needs (`answer`, `tests`).
    prompt_ids: problem -> token ids of the templated query (the tokenizer and chat template).
    estimator, verifier: built components (`RewardEstimator`, `Verifier`); policy: a `TokenPolicy`, only
    read (solutions end at `settings.stop_tokens`).
    stats: updated in place as the run goes, for the report.
    first_index: the index of the first of `problems` (a resumed run passes the rest of its problems; seeds
    depend on the index, so the resumed run samples what the whole run would have).
    """
    stats = stats if stats is not None else PTSStats()
    for index, problem in enumerate(problems, first_index):
        stats.problems += 1
        prompt = [int(t) for t in prompt_ids(problem)]
        problem = {**problem, "prompt_ids": prompt}
        p = _problem_estimates(problem, index, policy, estimator, verifier, settings.seed, stats)
        if not in_success_band(_probability(p(())), *settings.band):
            continue
        stats.in_band += 1
        for solution in policy.complete(
            prompt,
            num_samples=settings.num_solutions,
            max_new_tokens=settings.max_new_tokens,
            temperature=settings.temperature,
            stop_tokens=settings.stop_tokens,
            seed=prefix_seed(settings.seed, index, [-1]),
        ):
            stats.solutions += 1
            result = pivotal_token_search(solution, p, p_gap=settings.p_gap)
            stats.pivotal_tokens += len(result.pivotal_tokens)
            for pair in token_pairs(solution, result):
                stats.pairs += 1
                yield {
                    "problem_index": index,
                    "problem_id": problem.get("id"),
                    **pair_record(pair, prompt, policy.decode),
                }


def _problem_estimates(
    problem: dict[str, Any], index: int, policy: Any, estimator: Any, verifier: Any, seed: int, stats: PTSStats
) -> Callable[[Prefix], Any]:
    """p(success | query, response prefix), memoised across all solutions of one problem."""
    cache: dict[Prefix, float | SuccessEstimate] = {}
    prompt = problem["prompt_ids"]

    def success_probability(prefix: Prefix) -> float | SuccessEstimate:
        prefix = tuple(prefix)
        if prefix not in cache:
            stats.estimates += 1
            cache[prefix] = estimator(
                problem, prompt + list(prefix), policy=policy, verifier=verifier, seed=prefix_seed(seed, index, prefix)
            )
        return cache[prefix]

    return success_probability


def _probability(estimate: float | SuccessEstimate) -> float:
    return estimate.probability if isinstance(estimate, SuccessEstimate) else float(estimate)

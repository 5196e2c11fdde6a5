"""Built-in success estimator for Pivotal Token Search: `monte_carlo`.

p(success | query, prefix) is the fraction of `num_rollouts` sampled continuations of the prefix
whose response the verifier accepts. It returns a `phijax.pts.SuccessEstimate` holding each
rollout's first token and verdict, from which PTS takes the alternative token of a DPO pair without
sampling again. With N rollouts the standard error is at most sqrt(0.25 / N): the default 64 keeps
it near 0.06, well under the default p_gap of 0.2.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from phijax.errors import PhijaxError
from phijax.plugins import hookimpl
from phijax.plugins.protocols import TOKENS
from phijax.pts import Rollout, SuccessEstimate
from phijax.verify import ProblemError

END_OF_SEQUENCE = -1  # Rollout.first_token of a continuation that stopped at once (no token)


class MonteCarloEstimator:
    """`est(problem, prefix_ids, *, policy, verifier, seed) -> SuccessEstimate`, `policy` a `TokenPolicy`.

    Rollouts end at `stop_tokens` (given by the PTS driver for the run's prompt format; None: the
    policy's own), up to `max_new_tokens`, sampled at `temperature`.

    `prefix_ids` is the templated prompt followed by the first tokens of the response;
    `problem["prompt_ids"]` (the templated prompt alone, which the PTS driver stores in the record)
    tells where the response starts, so the verifier sees only the response text.
    """

    def __init__(
        self,
        num_rollouts: int = 64,
        max_new_tokens: int = 1024,
        temperature: float = 1.0,
        stop_tokens: Sequence[int] | None = None,
    ) -> None:
        if num_rollouts < 1 or max_new_tokens < 1 or temperature < 0:
            raise PhijaxError(
                "monte_carlo: num_rollouts and max_new_tokens must be >= 1 and "
                "temperature >= 0; fix the estimator options in the config"
            )
        self.num_rollouts, self.max_new_tokens, self.temperature = num_rollouts, max_new_tokens, temperature
        self.stop_tokens = None if stop_tokens is None else tuple(int(t) for t in stop_tokens)

    def __call__(
        self, problem: dict[str, Any], prefix_ids: Sequence[int], *, policy: Any, verifier: Any, seed: int
    ) -> SuccessEstimate:
        if TOKENS not in getattr(policy, "capabilities", frozenset({TOKENS})):
            raise PhijaxError(
                f"the monte_carlo estimator samples rollouts from token ids, which policy {policy.name!r} cannot "
                "take: use a local policy, or an OpenAI-compatible server that accepts token-id prompts (vLLM)"
            )
        response_prefix = list(prefix_ids[len(_prompt_ids(problem, prefix_ids)) :])
        continuations = policy.complete(
            list(prefix_ids),
            num_samples=self.num_rollouts,
            max_new_tokens=self.max_new_tokens,
            temperature=self.temperature,
            seed=seed,
            stop_tokens=self.stop_tokens,
        )
        rollouts = []
        for continuation in continuations:
            response = policy.decode(response_prefix + list(continuation))
            first = int(continuation[0]) if len(continuation) else END_OF_SEQUENCE
            rollouts.append(Rollout(first, bool(verifier(response, problem))))
        return SuccessEstimate.from_rollouts(rollouts)


def _prompt_ids(problem: dict[str, Any], prefix_ids: Sequence[int]) -> list[int]:
    prompt = problem.get("prompt_ids")
    if prompt is None:
        raise ProblemError(
            "monte_carlo: the problem record has no 'prompt_ids' (the templated "
            "query's token ids); set it so the estimator knows where the response starts"
        )
    prompt = [int(t) for t in prompt]
    if list(prefix_ids[: len(prompt)]) != prompt:
        raise ProblemError(
            "monte_carlo: prefix_ids does not start with problem['prompt_ids']; "
            "pass the templated prompt followed by the response prefix"
        )
    return prompt


@hookimpl
def phijax_register_reward_estimators(register) -> None:
    register("monte_carlo", MonteCarloEstimator)

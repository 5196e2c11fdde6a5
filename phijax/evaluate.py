"""Greedy accuracy of a policy on verifiable problems: how PTS + DPO is judged on the curriculum.

Each problem's templated query is decoded greedily (temperature 0, batched with the generation
engine) and the response is judged by the same verifier PTS used for p(success), so "accuracy"
here is p(success) of the greedy answer, in the reward's own terms.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from phijax.config import CurriculumProblemsConfig


def greedy_accuracy(policy: Any, problems: Sequence[dict[str, Any]], *,
                    prompt_ids: Callable[[dict[str, Any]], list[int]],
                    verifier: Callable[[str, dict[str, Any]], bool],
                    max_new_tokens: int, batch: int = 64) -> float:
    """Fraction of `problems` whose greedy response `verifier` accepts.

    policy: a `ModelPolicy` (its model, tokenizer and stop tokens are used for batched decoding).
    """
    from phijax.generate import Sampling, generate

    if not problems:
        raise ValueError("no problems to evaluate: pass at least one")
    correct = 0
    for start in range(0, len(problems), batch):
        chunk = problems[start:start + batch]
        result = generate(policy.model, [prompt_ids(p) for p in chunk], max_new_tokens=max_new_tokens,
                          sampling=Sampling(temperature=0.0), stop_tokens=policy.stop_tokens)
        for problem, ids in zip(chunk, result.rows(strip=policy.stop_tokens)):
            correct += bool(verifier(policy.decode(ids), problem))
    return correct / len(problems)


def curriculum_accuracy(policy: Any, n: int, seed: int, *, kinds: Sequence[str] = ("addition",),
                        max_digits: int | None = None, prompt_format: str = "chat",
                        max_new_tokens: int = 256) -> float:
    """Greedy accuracy on `n` curriculum problems of `seed` (pick a seed PTS and training never read),
    judged by `math_answer`."""
    from phijax.plugins.registry import get_registry
    from phijax.pts.driver import curriculum_problems, prompt_encoder

    problems = curriculum_problems(CurriculumProblemsConfig(count=n, seed=seed, kinds=tuple(kinds),
                                                            max_digits=max_digits))
    verifier = get_registry().create("verifiers", "math_answer")
    return greedy_accuracy(policy, problems, prompt_ids=prompt_encoder(policy.tokenizer, prompt_format),
                           verifier=verifier, max_new_tokens=max_new_tokens)

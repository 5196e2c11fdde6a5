"""A deterministic fake policy for the evaluator tests: log-likelihoods and completions from functions."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from phijax.plugins.protocols import GENERATE, LOGLIKELIHOOD

FIXTURES = Path(__file__).resolve().parent / "fixtures"


class FakePolicy:
    """A `TextPolicy` whose answers come from `score(context, continuation)` and `respond(prompt, j)`.

    Records every call, so tests can assert what the evaluator asked for (prompts, stops, chat).
    """

    name = "fake"

    def __init__(
        self,
        *,
        score: Callable[[str, str], float] | None = None,
        respond: Callable[[str, int], str] | None = None,
        capabilities: tuple[str, ...] = (GENERATE, LOGLIKELIHOOD),
    ) -> None:
        self.score = score or (lambda context, continuation: -float(len(continuation)))
        self.respond = respond or (lambda prompt, j: "")
        self.capabilities = frozenset(capabilities)
        self.calls: list[tuple[str, object, dict]] = []

    def loglikelihood(self, requests):
        self.calls.append(("loglikelihood", list(requests), {}))
        return [(float(self.score(c, x)), False) for c, x in requests]

    def generate(
        self, prompts, *, max_new_tokens, temperature=0.0, top_p=1.0, num_samples=1, stop=(), seed=0, chat=True
    ):
        settings = {
            "max_new_tokens": max_new_tokens,
            "temperature": temperature,
            "num_samples": num_samples,
            "stop": tuple(stop),
            "seed": seed,
            "chat": chat,
        }
        self.calls.append(("generate", list(prompts), settings))
        return [[_cut(self.respond(p, j), stop) for j in range(num_samples)] for p in prompts]


def _cut(text: str, stop) -> str:
    cuts = [text.find(s) for s in stop if s and s in text]
    return text[: min(cuts)] if cuts else text


@pytest.fixture
def fake_policy():
    """`fake_policy(score=..., respond=..., capabilities=...)` builds a `FakePolicy`."""
    return FakePolicy


@pytest.fixture
def fixtures() -> Path:
    return FIXTURES

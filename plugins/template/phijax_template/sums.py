"""Additions as text: a random-access data source of `a + b = c` lines and an evaluator for them.

Record `i` is a pure function of `(seed, i)`, so the source is the same on every host and every run:
the pipeline can shuffle it globally and resume exactly.
"""

from __future__ import annotations

import random
import re
from typing import Any

from phijax.errors import PhijaxError


def sum_problem(seed: int, index: int, max_operand: int) -> dict[str, str]:
    """The `index`-th problem of `seed`: `{"text", "prompt", "answer"}`."""
    rng = random.Random(f"sums:{seed}:{index}")
    a, b = rng.randint(0, max_operand), rng.randint(0, max_operand)
    prompt = f"{a} + {b} ="
    return {"text": f"{prompt} {a + b}", "prompt": prompt, "answer": str(a + b)}


class SumsSource:
    """`count` records of the form `{"text": "12 + 30 = 42", "prompt": ..., "answer": ...}`.

    Options (the keys of its `data.sources` config entry): `count`, `max_operand`, `seed`.
    """

    def __init__(self, count: int = 1000, max_operand: int = 99, seed: int = 0) -> None:
        self.count = _positive("count", count)
        self.max_operand = _positive("max_operand", max_operand)
        self.seed = int(seed)

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> dict[str, str]:
        if not 0 <= index < self.count:
            raise IndexError(f"record {index} of a sums source with {self.count} records")
        return sum_problem(self.seed, index, self.max_operand)


class SumsEvaluator:
    """Exact-match accuracy on `count` fresh problems: the first number the model writes must be the sum.

    Called as `evaluator(policy, *, seed) -> {"accuracy": float, "n": float}`.
    """

    def __init__(self, count: int = 50, max_operand: int = 99, max_new_tokens: int = 8) -> None:
        self.count = _positive("count", count)
        self.max_operand = _positive("max_operand", max_operand)
        self.max_new_tokens = _positive("max_new_tokens", max_new_tokens)

    def __call__(self, policy: Any, *, seed: int) -> dict[str, float]:
        problems = [sum_problem(seed, i, self.max_operand) for i in range(self.count)]
        completions = policy.generate(
            [p["prompt"] for p in problems], max_new_tokens=self.max_new_tokens, temperature=0.0, seed=seed
        )
        correct = sum(_first_number(c) == p["answer"] for c, p in zip(completions, problems, strict=True))
        return {"accuracy": correct / self.count, "n": float(self.count)}


def _first_number(text: str) -> str | None:
    match = re.search(r"-?\d+", text)
    return match.group(0) if match else None


def _positive(option: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise PhijaxError(f"sums: option `{option}` must be a positive integer, got {value!r}")
    return value

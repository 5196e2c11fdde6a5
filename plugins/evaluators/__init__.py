"""Built-in native evaluators: benchmarks scored through the `TextPolicy` protocol, no lm-eval needed.

    multiple_choice   log-likelihood of each choice, k-shot; acc, acc_norm (MMLU, ARC, HellaSwag JSONL)
    exact_match       generated final answers vs references, k-shot; exact_match, maj@k (GSM8K, MATH)
    code              generated programs run in the sandbox; pass@k (HumanEval, MBPP)
    ifeval            verifiable instructions; prompt/instruction-level accuracy, strict and loose (IFEval)
    curriculum        greedy accuracy on held-out problems of the arithmetic curriculum

Each factory takes its config options and returns a `phijax.plugins.protocols.Evaluator`. Importing
this package is cheap: the evaluator modules load when a factory is called.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from phijax.plugins import hookimpl

EVALUATORS = {
    "multiple_choice": ("multiple_choice", "MultipleChoice"),
    "exact_match": ("exact_match", "ExactMatch"),
    "code": ("code", "Code"),
    "ifeval": ("ifeval", "IFEval"),
    "curriculum": ("curriculum", "Curriculum"),
}


def _factory(module: str, cls: str) -> Callable[..., Any]:
    """A factory that imports `phijax_plugins.evaluators.<module>` only when an evaluator is built."""

    def build(**options: Any) -> Any:
        return getattr(importlib.import_module(f"{__name__}.{module}"), cls)(**options)

    build.__name__ = build.__qualname__ = cls
    build.__doc__ = f"Build the `{module}` evaluator: see `{__name__}.{module}`."
    return build


@hookimpl
def phijax_register_evaluators(register) -> None:
    for name, (module, cls) in EVALUATORS.items():
        register(name, _factory(module, cls))

"""Evaluation: `phijax eval` (`run`), the lm-evaluation-harness adapter (`harness.PhijaxLM`), configs.

    config   `EvalJob` (the `phijax eval` root), `EvaluatorSpec`, `TrainEvalConfig` (`train.eval`)
    run      `evaluate_policies`, results table / results.json / samples_<evaluator>.jsonl
    harness  `PhijaxLM`: any `TokenPolicy` as an lm-eval `LM` (needs `pip install phijax[eval]`)
    hook     `train.eval`: evaluators over the parameters being trained, every N steps

Importing `phijax.eval` registers `PhijaxLM` in lm-eval's model registry as `phijax` (a lazy
`module:Class` placeholder, so neither jax nor the adapter is imported until lm-eval asks for it);
`lm_eval.simple_evaluate(model="phijax", model_args="pretrained=PATH,batch_size=8")` then works.
"""

from __future__ import annotations

import importlib.util
from typing import Any

LM_EVAL_MISSING = "lm-evaluation-harness is not installed: pip install phijax[eval]"
HARNESS_TARGET = "phijax.eval.harness:PhijaxLM"


def _register_with_lm_eval() -> None:
    """Name `phijax` in lm-eval's model registry (no-op when lm-eval is not installed)."""
    if importlib.util.find_spec("lm_eval") is None:
        return
    import lm_eval.models  # noqa: F401 - lm-eval fills its own names only while the registry is empty
    from lm_eval.api.registry import model_registry

    if "phijax" not in model_registry:
        model_registry.register("phijax", target=HARNESS_TARGET)


_register_with_lm_eval()


def __getattr__(name: str) -> Any:
    if name == "PhijaxLM":
        from phijax.errors import PhijaxError

        if importlib.util.find_spec("lm_eval") is None:
            raise PhijaxError(LM_EVAL_MISSING)
        from phijax.eval.harness import PhijaxLM

        return PhijaxLM
    raise AttributeError(f"module 'phijax.eval' has no attribute {name!r}")

"""Evaluation during training (`train.eval: {every: N, evaluators: [...]}`): a trainer hook.

Every N steps the parameters being trained are wrapped as a `LocalPolicy` on the training mesh, with
no checkpoint round trip (the arrays stay where the step left them, sharded as the rules say), the
evaluators score it, and their metrics go to the run's metric loggers as `eval/<evaluator>/<metric>`
(with `.../<metric>_stderr` where one is defined). Evaluators are built when training starts, so an
unknown name or a bad benchmark file stops the run before its first step.
"""

from __future__ import annotations

from typing import Any

from phijax.eval.run import build_evaluators, run_evaluators
from phijax.train.hooks import Hook, HookContext


def eval_hooks(job: Any) -> list[Hook]:
    """The `train.eval` hook of a `TrainJob` (none when `train.eval.every` is 0)."""
    cfg = job.train.eval
    if not cfg.every:
        return []
    evaluators = build_evaluators(cfg.evaluators)
    from phijax.data import load_tokenizer

    tokenizer = load_tokenizer(job.data.tokenizer)

    def evaluate(context: HookContext) -> dict[str, float]:
        policy = policy_from_params(context, tokenizer)
        run = run_evaluators(policy, evaluators, seed=cfg.seed, progress=False, name=f"step {context.step}")
        return eval_metrics(run.results)

    return [Hook(every=cfg.every, action=evaluate, name="eval")]


def policy_from_params(context: HookContext, tokenizer: Any) -> Any:
    """A `LocalPolicy` over the parameters of `context` (a pure dict of sharded arrays), on its mesh."""
    from flax import nnx

    from phijax.inference.policy import LocalPolicy
    from phijax.model.phi4 import Phi4

    cfg = context.job.model
    graphdef, state = nnx.split(nnx.eval_shape(lambda: Phi4(cfg, rngs=nnx.Rngs(0))))
    nnx.replace_by_pure_dict(state, context.params)
    model = nnx.merge(graphdef, state)
    return LocalPolicy(model, tokenizer, mesh=context.mesh, rules=context.job.mesh.rules, name=f"step {context.step}")


def eval_metrics(results: dict[str, Any]) -> dict[str, float]:
    """`eval/<evaluator>/<metric>` (and `..._stderr`) from each evaluator's `EvaluationResult`."""
    out: dict[str, float] = {}
    for key, result in results.items():
        for metric, value in result.metrics.items():
            out[f"eval/{key}/{metric}"] = float(value)
        for metric, value in result.stderr.items():
            out[f"eval/{key}/{metric}_stderr"] = float(value)
    return out

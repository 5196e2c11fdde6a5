"""`phijax eval`'s config root (`EvalJob`) and the `train.eval` section (pure: no jax).

    policies: [{backend: local, checkpoint: runs/sft}, {backend: local, checkpoint: runs/dpo}]
    evaluators:
      - {name: multiple_choice, path: benchmarks/mmlu.jsonl}
      - {name: lm_eval, tasks: [arc_tiny], include_path: configs/tiny/lm_eval}
    output_dir: runs/eval

Each evaluator entry names a registered evaluator (`phijax plugins` lists them); its other keys are the
evaluator factory's options. `policy:` is shorthand for a one-element `policies:`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from phijax.errors import ConfigError
from phijax.inference.config import PolicySpec
from phijax.parallel.config import MeshConfig


@dataclass(frozen=True)
class EvaluatorSpec:
    """One entry of `evaluators`: a registered evaluator and its options."""

    name: str = field(metadata={"help": "registered evaluator (`phijax plugins` lists them), e.g. lm_eval"})
    label: str | None = field(
        default=None,
        metadata={"help": "the evaluator's name in tables, results.json and samples_<label>.jsonl (null: name)"},
    )
    options: dict[str, Any] = field(
        default_factory=dict, metadata={"rest": True, "help": "other keys: the evaluator factory's options"}
    )

    @property
    def key(self) -> str:
        """The evaluator's name in outputs: its label, else its registered name."""
        return self.label or self.name


def check_evaluators(evaluators: tuple[EvaluatorSpec, ...], where: str) -> None:
    """Every evaluator's output name is unique (two entries of one evaluator need a `label` each)."""
    seen: set[str] = set()
    for i, spec in enumerate(evaluators):
        if spec.key in seen:
            raise ConfigError(f"{where}[{i}] repeats evaluator `{spec.key}`: give each entry a distinct `label`")
        seen.add(spec.key)


@dataclass(frozen=True)
class EvalJob:
    """`phijax eval`: score one or more policies with a list of evaluators; write results.json."""

    policy: PolicySpec | None = field(
        default=None, metadata={"help": "the one policy to score (shorthand for a one-element `policies`)"}
    )
    policies: tuple[PolicySpec, ...] = field(
        default=(), metadata={"help": "policies to score, each {backend, checkpoint, tokenizer, ...options}"}
    )
    mesh: MeshConfig = field(default_factory=MeshConfig)
    evaluators: tuple[EvaluatorSpec, ...] = field(
        default=(), metadata={"help": "evaluators to run, each {name, label, ...options} (see EvaluatorSpec)"}
    )
    output_dir: str = field(
        default="runs/eval", metadata={"help": "where results.json and samples_<evaluator>.jsonl are written"}
    )
    seed: int = field(default=0, metadata={"help": "seed handed to every evaluator (few-shot draws, sampling)"})
    limit: int | None = field(
        default=None,
        metadata={"help": "score at most this many items per evaluator (passed as its `limit` option; null: all)"},
    )
    log_samples: bool = field(
        default=False, metadata={"help": "write samples_<evaluator>.jsonl (also `--log-samples`)"}
    )

    def __post_init__(self) -> None:
        if self.policy is not None and self.policies:
            raise ConfigError("set either `policy` or `policies`, not both")
        if self.policy is None and not self.policies:
            raise ConfigError("no policy: add `policy: {backend: local, checkpoint: PATH}` (or a `policies` list)")
        if not self.evaluators:
            raise ConfigError("no evaluators: add `evaluators: [{name: ..., ...options}]`")
        check_evaluators(self.evaluators, "evaluators")
        if self.limit is not None and self.limit < 1:
            raise ConfigError(f"limit is {self.limit}: use a positive count, or null for every item")

    @property
    def all_policies(self) -> tuple[PolicySpec, ...]:
        """`policies`, or the one `policy`."""
        return self.policies or ((self.policy,) if self.policy is not None else ())


@dataclass(frozen=True)
class TrainEvalConfig:
    """`train.eval`: score the parameters being trained every N steps, in the running process."""

    every: int = field(default=0, metadata={"help": "run the evaluators every this many steps (0: never)"})
    evaluators: tuple[EvaluatorSpec, ...] = field(
        default=(), metadata={"help": "evaluators to run, each {name, label, ...options} (see EvaluatorSpec)"}
    )
    seed: int = field(default=0, metadata={"help": "seed handed to every evaluator"})

    def __post_init__(self) -> None:
        if self.every < 0:
            raise ConfigError(f"train.eval.every is {self.every}: use a positive step count, or 0 for never")
        if self.every and not self.evaluators:
            raise ConfigError("train.eval.every is set but train.eval.evaluators is empty: name at least one")
        check_evaluators(self.evaluators, "train.eval.evaluators")

"""`phijax pts`'s config root, `PTSJob` (pure: no jax).

    policy: {backend: local, checkpoint: runs/sft}     # named as in every command
    mesh: {fsdp: -1}
    problems: data/pts/math.jsonl                      # or null: curriculum problems
    rollouts: 64
    band: [0.2, 0.8]
    output: runs/pts/pairs.jsonl

`rollouts`, `max_new_tokens` and `temperature` are passed to the estimator as `num_rollouts`,
`max_new_tokens`, `temperature` (with the run's `stop_tokens`), plus `estimator_options`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from phijax.data.config import CurriculumProblemsConfig
from phijax.inference.config import PolicySpec
from phijax.parallel.config import MeshConfig


@dataclass(frozen=True)
class PTSJob:
    """`phijax pts`: sample solutions, find pivotal tokens, write single-token DPO pairs."""

    policy: PolicySpec = field(default_factory=PolicySpec, metadata={"help": "the policy searched (see PolicySpec)"})
    mesh: MeshConfig = field(default_factory=MeshConfig, metadata={"help": "devices the policy is sharded over"})
    seed: int = field(default=0, metadata={"help": "run seed: every rollout's seed derives from it and the prefix"})
    output: str = field(
        default="runs/pts/pairs.jsonl",
        metadata={"help": "pairs JSONL (written whole at the end); its summary goes to <stem>.summary.json"},
    )
    problems: str | None = field(
        default=None,
        metadata={"help": "JSONL of {query, answer} or {query, tests} problems (null: curriculum problems)"},
    )
    curriculum: CurriculumProblemsConfig = field(
        default_factory=CurriculumProblemsConfig, metadata={"help": "curriculum problems, when problems is null"}
    )
    prompt_format: Literal["chat", "text"] = field(
        default="chat",
        metadata={"help": "`chat` (chat template, SFT models) or `text` (Exercise. ... Solution., pretrained models)"},
    )
    estimator: str = field(default="monte_carlo", metadata={"help": "registered reward estimator"})
    estimator_options: dict[str, Any] = field(default_factory=dict, metadata={"help": "the estimator's own options"})
    verifier: str = field(default="math_answer", metadata={"help": "registered verifier of a completed answer"})
    verifier_options: dict[str, Any] = field(default_factory=dict, metadata={"help": "the verifier's options"})
    rollouts: int = field(default=64, metadata={"help": "rollouts per estimate of p(success | prefix)"})
    p_gap: float = field(default=0.2, metadata={"help": "a token is pivotal when it moves p(success) by this much"})
    band: tuple[float, ...] = field(
        default=(0.2, 0.8), metadata={"help": "[low, high]: only queries with p(success) inside are searched"}
    )
    solutions: int = field(default=4, metadata={"help": "solutions sampled and searched per query in the band"})
    max_new_tokens: int = field(default=1024, metadata={"help": "longest solution or rollout, in tokens"})
    temperature: float = field(default=1.0, metadata={"help": "sampling temperature of solutions and rollouts"})

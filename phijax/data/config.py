"""Where training text comes from and how it is tokenized (`data:`); see `phijax.data.pipeline`.

Pure: no jax.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from phijax.data.decontam.config import DecontamConfig


@dataclass(frozen=True)
class SourceSpec:
    """One entry of `data.sources`: a named component of the mixture.

    Keys other than the four below are passed to the source factory as keyword arguments.
    """

    name: str = field(metadata={"help": "the source's name in metrics, stats and resume state"})
    source: str = field(metadata={"help": "registered data-source plugin (`phijax plugins` lists them)"})
    weight: float = field(default=1.0, metadata={"help": "share of sampled documents, relative to the others"})
    epochs: float | None = field(
        default=None, metadata={"help": "passes over the source before it is capped (null: no cap)"}
    )
    options: dict[str, Any] = field(
        default_factory=dict, metadata={"rest": True, "help": "other keys: the source factory's options"}
    )


@dataclass(frozen=True)
class DataConfig:
    """The training mixture: sources, tokenizer, and how documents become rows."""

    sources: tuple[SourceSpec, ...] = field(default=(), metadata={"help": "the mixture's sources (see SourceSpec)"})
    tokenizer: str = field(
        default="phi4", metadata={"help": "`phi4`, a .tiktoken file, a tokenizer.json or a HF checkpoint directory"}
    )
    strict: bool = field(default=False, metadata={"help": "a bad record is an error instead of skipped and counted"})
    seed: int = field(default=0, metadata={"help": "seed of the mixture's shuffles and source choices"})
    on_epoch_cap: Literal["stop", "renormalize"] = field(
        default="renormalize",
        metadata={"help": "when a source reaches its epochs: stop the data, or renormalize the other weights"},
    )
    add_bos: bool = field(default=False, metadata={"help": "start every document with the BOS token"})
    packing: Literal["split", "pad"] = field(
        default="split",
        metadata={"help": "split: fill every row, cutting documents; pad: a document that does not fit starts a row"},
    )
    decontaminate: DecontamConfig | None = field(
        default=None,
        metadata={"help": "drop training documents that overlap benchmarks (13/7-gram, see docs/decontamination.md)"},
    )


@dataclass(frozen=True)
class CurriculumProblemsConfig:
    """PTS problems drawn from the embedded arithmetic curriculum (`phijax.data.curriculum`).

    Problem i of curriculum `seed`, for i = 0, 1, ..., keeping those of `kinds` whose operands have
    at most `max_digits` digits (null: any), until `count` are kept. Use a seed the model was not
    trained on (the tiny pretraining reads seed 0).
    """

    count: int = field(default=100, metadata={"help": "problems to draw"})
    seed: int = field(default=1, metadata={"help": "curriculum seed (use one the model was not trained on)"})
    kinds: tuple[str, ...] = field(
        default=("addition", "subtraction", "multiplication"),
        metadata={"help": "problem kinds to keep (phijax.data.curriculum.KINDS)"},
    )
    max_digits: int | None = field(default=None, metadata={"help": "largest operand digits kept (null: any)"})

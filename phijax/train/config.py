"""The training job (`phijax train`, `phijax dpo`): its root `TrainJob` and the sections only training reads.

A job is one frozen dataclass built by `phijax.config.load_job(TrainJob, files, overrides)`. Every key
carries a one-line description (`metadata["help"]`, printed by `phijax config keys train`). The stage
(`train.stage`) selects the objective (`phijax.train.objectives`); `TrainJob.validate` checks the whole
job in one place, the generic shape first, then what the objective adds. Pure: no jax at import.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from phijax.config.loader import key, section
from phijax.data.config import DataConfig
from phijax.errors import ConfigError, PhijaxError
from phijax.eval.config import TrainEvalConfig
from phijax.model.config import ModelConfig
from phijax.parallel.config import MeshConfig

STAGES = ("pretrain", "midtrain", "sft", "dpo")


@dataclass(frozen=True)
class OptimConfig:
    """AdamW with linear warm-up then linear decay (Phi-4 pretraining: peak 3e-4, wd 0.1)."""

    peak_lr: float = key(3e-4, "learning rate at the end of warm-up")
    end_lr_ratio: float = key(0.0, "final learning rate as a fraction of peak_lr (linear decay to it)")
    warmup_steps: int = key(0, "steps of linear warm-up from 0 to peak_lr (at most train.steps)")
    warmup_ratio: float | None = key(
        None, "warm-up as a fraction of train.steps, in [0, 1] (replaces warmup_steps when set; MaxText's form)"
    )
    extend: Literal["constant", "redecay"] | None = key(
        None,
        "when train.steps is raised past the steps a run's schedule was laid out for: constant (hold the LR the "
        "schedule ended at) or redecay (decay again from peak_lr to the end LR over the new steps); null refuses",
    )
    weight_decay: float = key(0.1, "AdamW decoupled weight decay, applied to every parameter")
    b1: float = key(0.9, "AdamW first-moment decay")
    b2: float = key(0.95, "AdamW second-moment decay")
    eps: float = key(1e-8, "AdamW epsilon")
    clip_grad_norm: float = key(1.0, "clip the global gradient norm to this before AdamW")

    def warmup_for(self, steps: int) -> int:
        """Warm-up steps of a run of `steps` steps: `warmup_ratio`·steps when set, else `warmup_steps`."""
        return self.warmup_steps if self.warmup_ratio is None else round(self.warmup_ratio * steps)


@dataclass(frozen=True)
class TrainConfig:
    """Length and shape of the run, and which objective it trains (`stage`)."""

    stage: Literal["pretrain", "midtrain", "sft", "dpo"] = key(
        "pretrain", "the objective: pretrain, midtrain, sft (next-token) or dpo (preference pairs)"
    )
    steps: int = key(100, "optimizer steps of the whole run (a resumed run continues to this)")
    global_batch: int = key(8, "examples per step over all devices: sequences (next-token) or pairs (dpo)")
    seq_len: int = key(4096, "positions per row")
    grad_accum: int = key(1, "micro-batches a step's batch is split into (divides global_batch)")
    log_every: int = key(1, "log metrics every this many steps")
    seed: int = key(0, "parameter initialisation seed (used without checkpoint.init_from)")
    loss_chunk: int = key(1024, "positions per LM-head chunk: bounds live fp32 logits to batch x chunk x vocab")
    metric_loggers: tuple[str, ...] = key(("jsonl",), "metric sinks by registered name; jsonl writes metrics.jsonl")
    peak_tflops: float | None = key(None, "peak dense TFLOP/s of one device for MFU (null: by device kind)")
    max_bad_steps: int = key(
        0,
        "steps in a row with a non-finite loss or grad norm that are skipped (no update) before the run stops; "
        "0 stops at the first",
    )
    eval: TrainEvalConfig = section(
        TrainEvalConfig, "evaluators run on the parameters every N steps (phijax.eval.hook)"
    )


@dataclass(frozen=True)
class CheckpointConfig:
    """When to save, how many to keep, and what to start from."""

    every: int = key(1000, "save a checkpoint every this many steps (and at the last)")
    keep: int = key(3, "newest checkpoints kept")
    async_save: bool = key(True, "write checkpoints in the background while training goes on")
    init_from: str | None = key(None, "start from this model dir, checkpoint step or run dir (newest step)")


@dataclass(frozen=True)
class DPOConfig:
    """Preference optimisation (`train.stage: dpo`): the pairs, the reference and the loss."""

    pairs: tuple[str, ...] = key((), "JSONL files (globs) of preference pairs: whole responses or PTS tokens")
    beta: float = key(0.1, "strength of the pull towards the reference (> 0)")
    label_smoothing: float = key(0.0, "probability a label is flipped, in [0, 0.5) (sigmoid loss only)")
    loss_type: Literal["sigmoid", "ipo"] = key("sigmoid", "preference loss: sigmoid (DPO) or ipo")
    reference: Literal["precompute", "frozen"] = key(
        "precompute", "precompute: score every pair once before training; frozen: a second model scores each batch"
    )
    shuffle: bool = key(True, "shuffle the pairs, one permutation per epoch (seeded by data.seed)")


@dataclass(frozen=True)
class TrainJob:
    """Everything a training run reads; written resolved to `run_dir/config.yaml`."""

    run_dir: str = key("runs/default", "the run directory: config.yaml, metrics.jsonl, checkpoints/")
    model: ModelConfig = section(ModelConfig, "the decoder's architecture and numerics")
    mesh: MeshConfig = section(MeshConfig, "the device mesh and the logical-axis rules")
    data: DataConfig = section(DataConfig, "training text and its tokenizer (dpo reads tokenizer and seed)")
    optim: OptimConfig = section(OptimConfig, "AdamW and its learning-rate schedule")
    train: TrainConfig = section(TrainConfig, "length, batch shape and objective of the run")
    checkpoint: CheckpointConfig = section(CheckpointConfig, "checkpoint cadence and the starting point")
    dpo: DPOConfig | None = key(None, "preference pairs and loss; only with train.stage=dpo")

    def __post_init__(self) -> None:
        if self.model.attention == "splash" and self.train.seq_len % 128:
            raise ConfigError(
                f"model.attention=splash tiles sequences in blocks of 128 tokens, but train.seq_len "
                f"is {self.train.seq_len}; use a multiple of 128 or model.attention=xla"
            )

    def validate(self) -> None:
        """Check the whole job (ConfigError, one line naming the key and the fix): shape, schedule, mesh,
        plugin names, then the objective. Nothing is written before this passes."""
        train = self.train
        _check_positive(
            {
                "train.steps": train.steps,
                "train.global_batch": train.global_batch,
                "train.grad_accum": train.grad_accum,
                "train.seq_len": train.seq_len,
                "train.log_every": train.log_every,
                "train.loss_chunk": train.loss_chunk,
                "checkpoint.every": self.checkpoint.every,
                "checkpoint.keep": self.checkpoint.keep,
            }
        )
        if train.max_bad_steps < 0:
            raise ConfigError(f"train.max_bad_steps is {train.max_bad_steps}: use 0 (stop at the first) or more")
        if train.global_batch % train.grad_accum:
            raise ConfigError(
                f"train.global_batch ({train.global_batch}) must be a multiple of train.grad_accum ({train.grad_accum})"
            )
        if train.seq_len > self.model.max_seq_len:
            raise ConfigError(f"train.seq_len ({train.seq_len}) exceeds model.max_seq_len ({self.model.max_seq_len})")
        _check_optim(self.optim, train.steps)
        _check_batch_axes(self.mesh, train.global_batch, train.stage)
        _check_plugin_names(self)
        if self.dpo is not None and train.stage != "dpo":
            raise ConfigError(
                f"the dpo: section is read only with train.stage=dpo (this job is "
                f"{train.stage}); remove it or set train.stage=dpo"
            )
        from phijax.train.objectives import objective_class  # late: objectives import jax

        objective_class(train.stage).validate(self)


def _check_positive(values: dict[str, int]) -> None:
    """ConfigError naming the first key whose value is below 1."""
    for name, value in values.items():
        if value < 1:
            extra = " (0 would delete every checkpoint)" if name == "checkpoint.keep" else ""
            raise ConfigError(f"{name} is {value}: it must be at least 1{extra}")


def _check_optim(optim: OptimConfig, steps: int) -> None:
    """Learning rates finite and non-negative, warm-up within the run."""
    for name in ("peak_lr", "end_lr_ratio", "weight_decay", "clip_grad_norm", "eps"):
        value = getattr(optim, name)
        if not math.isfinite(value) or value < 0:
            raise ConfigError(f"optim.{name} is {value}: it must be a finite number >= 0")
    if optim.warmup_steps < 0:
        raise ConfigError(f"optim.warmup_steps is {optim.warmup_steps}: it must be >= 0")
    if optim.warmup_ratio is not None and not 0 <= optim.warmup_ratio <= 1:
        raise ConfigError(f"optim.warmup_ratio is {optim.warmup_ratio}: it must be in [0, 1]")
    if optim.warmup_steps > steps and optim.warmup_ratio is None:
        raise ConfigError(
            f"optim.warmup_steps ({optim.warmup_steps}) exceeds train.steps ({steps}): override it, e.g. "
            f"optim.warmup_steps={max(steps // 10, 0)}, or give a fraction with optim.warmup_ratio=0.1"
        )


def batch_axes_size(mesh: MeshConfig) -> int | None:
    """Devices the batch is split over (the mesh axes of the `batch` rule), when known before jax starts:
    every mesh size explicit, or `mesh.cpu_devices` set (the -1 axis takes the rest); else None."""
    sizes = {"data": mesh.data, "fsdp": mesh.fsdp, "tensor": mesh.tensor}
    if -1 in sizes.values():
        fixed = math.prod(s for s in sizes.values() if s != -1)
        if mesh.cpu_devices is None or fixed == 0 or mesh.cpu_devices % fixed:
            return None
        sizes = {k: (mesh.cpu_devices // fixed if v == -1 else v) for k, v in sizes.items()}
    axes = mesh.rules.get("batch")
    axes = [axes] if isinstance(axes, str) else list(axes or [])
    return math.prod(sizes.get(a, 1) for a in axes)


def check_batch_divides(global_batch: int, batch_devices: int, rows_per_example: int = 1) -> None:
    """ConfigError when the batch axes of the mesh do not divide the rows of `train.global_batch`
    (`rows_per_example`: 2 for preference pairs, whose chosen and rejected rows travel together)."""
    if (global_batch * rows_per_example) % batch_devices:
        multiple = batch_devices // math.gcd(batch_devices, rows_per_example)
        raise ConfigError(
            f"train.global_batch ({global_batch}) does not split over the {batch_devices} devices of the mesh's "
            f"batch axes (mesh.data x mesh.fsdp): use a multiple of {multiple} or change mesh.*"
        )


def rows_per_example(stage: str) -> int:
    return 2 if stage == "dpo" else 1


def _check_batch_axes(mesh: MeshConfig, global_batch: int, stage: str) -> None:
    size = batch_axes_size(mesh)
    if size is not None:
        check_batch_divides(global_batch, size, rows_per_example(stage))


def _check_plugin_names(job: TrainJob) -> None:
    """Every plugin the job names is registered (metric loggers, data sources, evaluators)."""
    from phijax.plugins.registry import get_registry

    registry = get_registry()
    named = [("metric_loggers", n, "train.metric_loggers") for n in job.train.metric_loggers]
    if job.train.stage != "dpo":
        named += [("data_sources", s.source, f"data.sources `{s.name}`") for s in job.data.sources]
    named += [("evaluators", e.name, "train.eval.evaluators") for e in job.train.eval.evaluators]
    for kind, name, where in named:
        try:
            registry.component(kind, name)
        except PhijaxError as err:
            raise ConfigError(f"{where}: {err}") from None


def load_train_job(files: Sequence[str | Path] = (), overrides: Sequence[str] = ()) -> TrainJob:
    """A `TrainJob` from YAML files (later wins) and `key.sub=value` overrides (last wins); not yet validated."""
    from phijax.config.loader import load_job

    return load_job(TrainJob, files, overrides)


def job_to_dict(job: TrainJob) -> dict[str, Any]:
    """The job as YAML-able data holding only what it reads: no `dpo:` unless the objective is DPO."""
    from phijax.config.loader import to_dict

    out = to_dict(job)
    if job.dpo is None:
        out.pop("dpo")
    return out

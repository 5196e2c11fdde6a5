"""AdamW with Phi-4's schedule: linear warm-up to the peak, then linear decay to `end_lr_ratio`·peak.

A run's schedule is laid out once, for the `train.steps` it started with, and recorded in every
checkpoint (`schedule_record`). A resumed run keeps that layout; raising `train.steps` past it would
otherwise re-stretch the decay (the LR of a finished run jumping back up), so the extra steps follow
`optim.extend` — `constant` holds the LR the schedule ended at, `redecay` decays again from `peak_lr`
to the end LR — and without it the extension is refused.
"""

from __future__ import annotations

from typing import Any

import optax

from phijax.errors import ConfigError
from phijax.train.config import OptimConfig


def schedule_record(cfg: OptimConfig, total_steps: int) -> dict[str, Any]:
    """The layout of a run's schedule, as checkpoints record it (JSON-able)."""
    return {
        "steps": total_steps,
        "warmup_steps": cfg.warmup_for(total_steps),
        "peak_lr": cfg.peak_lr,
        "end_lr_ratio": cfg.end_lr_ratio,
    }


def _warmup_decay(record: dict[str, Any]) -> optax.Schedule:
    warmup, steps, peak = record["warmup_steps"], record["steps"], record["peak_lr"]
    return optax.join_schedules(
        [
            optax.linear_schedule(0.0, peak, max(warmup, 1)),
            optax.linear_schedule(peak, peak * record["end_lr_ratio"], max(steps - warmup, 1)),
        ],
        boundaries=[warmup],
    )


def learning_rate_schedule(
    cfg: OptimConfig, total_steps: int, recorded: dict[str, Any] | None = None
) -> optax.Schedule:
    """Learning rate at each optimizer step (0-based count of updates done).

    recorded: the schedule the run started with (`schedule_record`, from its checkpoint); None for a
    fresh run. Steps past `recorded["steps"]` follow `cfg.extend`; ConfigError when it is unset.
    """
    warmup = cfg.warmup_for(total_steps)
    if recorded is None and warmup > total_steps:
        raise ConfigError(
            f"optim.warmup_steps ({warmup}) exceeds train.steps ({total_steps}): override it, e.g. "
            f"optim.warmup_steps={total_steps // 10}, or use optim.warmup_ratio=0.1"
        )
    record = recorded or schedule_record(cfg, total_steps)
    base = _warmup_decay(record)
    end = record["steps"]
    if total_steps <= end:
        return base
    if cfg.extend is None:
        raise ConfigError(
            f"train.steps={total_steps} extends a run whose LR schedule was laid out for {end} steps (re-laying it "
            f"would change the LR of steps already taken): set optim.extend=constant (hold the final LR "
            f"{float(base(end)):.3g}) or optim.extend=redecay (decay again from optim.peak_lr)"
        )
    if cfg.extend == "constant":
        tail = optax.constant_schedule(float(base(end)))
    else:
        tail = optax.linear_schedule(cfg.peak_lr, cfg.peak_lr * cfg.end_lr_ratio, total_steps - end)
    return optax.join_schedules([base, tail], boundaries=[end])


def make_optimizer(
    cfg: OptimConfig, total_steps: int, recorded: dict[str, Any] | None = None
) -> optax.GradientTransformation:
    """Global-norm clipping then AdamW with decoupled weight decay on every parameter."""
    return optax.chain(
        optax.clip_by_global_norm(cfg.clip_grad_norm),
        optax.adamw(
            learning_rate_schedule(cfg, total_steps, recorded),
            b1=cfg.b1,
            b2=cfg.b2,
            eps=cfg.eps,
            weight_decay=cfg.weight_decay,
        ),
    )


__all__ = ["learning_rate_schedule", "make_optimizer", "schedule_record"]

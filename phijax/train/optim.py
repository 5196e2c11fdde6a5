"""AdamW with Phi-4's schedule: linear warm-up to the peak, then linear decay to `end_lr_ratio`·peak."""

from __future__ import annotations

import optax

from phijax.config import OptimConfig
from phijax.errors import ConfigError


def learning_rate_schedule(cfg: OptimConfig, total_steps: int) -> optax.Schedule:
    """Learning rate at each optimizer step (optax's own schedule functions)."""
    if cfg.warmup_steps > total_steps:
        raise ConfigError(f"optim.warmup_steps ({cfg.warmup_steps}) exceeds train.steps ({total_steps}); lower it")
    return optax.join_schedules(
        [
            optax.linear_schedule(0.0, cfg.peak_lr, max(cfg.warmup_steps, 1)),
            optax.linear_schedule(cfg.peak_lr, cfg.peak_lr * cfg.end_lr_ratio, max(total_steps - cfg.warmup_steps, 1)),
        ],
        boundaries=[cfg.warmup_steps],
    )


def make_optimizer(cfg: OptimConfig, total_steps: int) -> optax.GradientTransformation:
    """Global-norm clipping then AdamW with decoupled weight decay on every parameter."""
    return optax.chain(
        optax.clip_by_global_norm(cfg.clip_grad_norm),
        optax.adamw(
            learning_rate_schedule(cfg, total_steps),
            b1=cfg.b1, b2=cfg.b2, eps=cfg.eps, weight_decay=cfg.weight_decay,
        ),
    )

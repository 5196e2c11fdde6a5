"""Periodic actions of a training run: every N steps, after the step's bookkeeping, the trainer calls them.

A hook is `Hook(every=N, action=f)`; `f(context)` sees the step just finished, the parameters and the
job, and may return metrics, which are logged under that step by the run's metric sinks (evaluation
scores, sample texts' lengths, ...). The trainer runs hooks on process 0 and every other process
alike, so an action may use the sharded parameters (a jitted evaluation) as long as every process
calls it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from phijax.errors import ConfigError


@dataclass(frozen=True)
class HookContext:
    """What an action sees: the step just taken (1-based), its parameters (sharded) and the run."""

    step: int
    params: dict[str, Any]
    job: Any
    mesh: Any
    layout: Any


@dataclass(frozen=True)
class Hook:
    """`action(context)` after every `every`-th step; a returned dict is logged as that step's metrics."""

    every: int
    action: Callable[[HookContext], dict[str, Any] | None]
    name: str = "hook"

    def __post_init__(self) -> None:
        if self.every < 1:
            raise ConfigError(f"hook {self.name}: every must be at least 1, got {self.every}")

    def due(self, step: int) -> bool:
        return step % self.every == 0


def run_hooks(hooks: Sequence[Hook], context: HookContext) -> dict[str, Any]:
    """Run the hooks due at `context.step`; their returned metrics merged (later hooks win a shared key)."""
    logged: dict[str, Any] = {}
    for hook in hooks:
        if hook.due(context.step):
            logged.update(hook.action(context) or {})
    return logged

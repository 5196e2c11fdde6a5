"""Capability checks: an evaluator (or lm-eval request type) needs what the policy cannot do → one line.

Checked before anything is scored, so a run never spends hours and then fails on the last evaluator.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from phijax.errors import PhijaxError


class CapabilityError(PhijaxError):
    """A policy lacks a capability (`generate`, `loglikelihood`, `tokens`) that an evaluator needs."""


def missing_capabilities(policy: Any, needed: Iterable[str]) -> list[str]:
    """The capabilities in `needed` that `policy.capabilities` lacks, sorted."""
    have = frozenset(getattr(policy, "capabilities", frozenset()))
    return sorted(set(needed) - have)


def require(policy: Any, needed: Iterable[str], who: str) -> None:
    """Raise `CapabilityError` naming `who`, the policy and the missing capabilities, if any."""
    missing = missing_capabilities(policy, needed)
    if missing:
        name = getattr(policy, "name", type(policy).__name__)
        have = ", ".join(sorted(getattr(policy, "capabilities", ()))) or "none"
        raise CapabilityError(
            f"{who} needs {', '.join(missing)} but policy {name} offers only {have}: "
            f"use a backend with {missing[0]} (e.g. `backend: local`)"
        )

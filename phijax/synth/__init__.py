"""Synthetic data (`phijax synth`): generators over a backend, run as cached, resumable stages.

`config` (the `SynthJob` root), `templates` (prompt files with `{{variable}}` slots), `cache` (the
on-disk request cache and the caching policy wrapper), `run` (stages, shards, provenance, resume,
summary), `testing` (a deterministic fake policy and a loopback fake OpenAI-compatible server).
Importing this package is cheap: no jax, no network.
"""

from __future__ import annotations

from phijax.errors import PhijaxError

REJECTED = "_rejected"
"""Key of a rejection marker a generator may yield: `{"_rejected": "reason"}` (counted, never written)."""
PROVENANCE = "_provenance"
"""Key of the provenance a generator adds to a record (`template_hash`, `sample_index`); merged by the runner."""


class SynthError(PhijaxError):
    """Bad synthetic-data input: a stage, template, seed file or backend that cannot be used."""


class RequestFailed(SynthError):
    """A backend request that failed after its retries; `reason` is a short word (`timeout`, `http_500`, ...)."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"request failed ({reason}){': ' + detail if detail else ''}")
        self.reason = reason


def rejected(reason: str) -> dict[str, str]:
    """The marker a generator yields for a seed or candidate it drops, so the summary counts it by reason."""
    return {REJECTED: reason}

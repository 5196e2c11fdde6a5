"""Inference: sampling with a key/value cache, batched log-likelihoods, and the local policy.

    sampling       sampling methods (`Greedy`, `Sampling`), `filter_logits`
    cache          `KVCache`, `prefill`, `decode_step`, `bucket_length`
    programs       the jitted generation programs; rows sharded over the mesh's batch axes
    api            `generate`, `sample_continuations` -> `Generation` (token ids in, token ids out)
    loglikelihood  requests packed into rows (segment ids) and scored many per forward pass
    policy         `LocalPolicy` (the protocols' `TokenPolicy`) and `load_policy` (sharded load)
    config         `PolicySpec`: the `policy:` section of a command's config

Names below are imported lazily: `import phijax.inference` does not import jax.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "Greedy": "sampling",
    "Sampling": "sampling",
    "GenerationError": "sampling",
    "filter_logits": "sampling",
    "sampling_method": "sampling",
    "sample_tokens": "sampling",
    "KVCache": "cache",
    "bucket_length": "cache",
    "prefill": "cache",
    "decode_step": "cache",
    "Generation": "api",
    "generate": "api",
    "sample_continuations": "api",
    "LocalPolicy": "policy",
    "load_policy": "policy",
    "PolicySpec": "config",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"phijax.inference.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'phijax.inference' has no attribute {name!r}")

"""Inference: sampling with a key/value cache, batched log-likelihoods, and the local policy.

    sampling       sampling methods (`Greedy`, `Sampling`), `filter_logits`
    cache          `KVCache`, `prefill`, `decode_step`, `bucket_length`
    programs       the jitted generation programs; rows sharded over the mesh's batch axes
    api            `generate`, `sample_continuations` -> `Generation` (token ids in, token ids out)
    loglikelihood  requests packed into rows (segment ids) and scored many per forward pass
    policy         `LocalPolicy` (the protocols' `TokenPolicy`) and `load_policy` (sharded load)
    replies        `sample_replies`: a policy's replies to a `GenerateJob` (`phijax generate`)
    config         `PolicySpec` (the `policy:` section of a command's config) and `GenerateJob` (`phijax generate`)

Names below are imported lazily: `import phijax.inference` does not import jax.
"""

from __future__ import annotations

from phijax.lazy import lazy_attributes

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
    "GenerateJob": "config",
    "sample_replies": "replies",
}

__all__ = sorted(_LAZY)
__getattr__ = lazy_attributes(__name__, {name: f"{__name__}.{module}" for name, module in _LAZY.items()})

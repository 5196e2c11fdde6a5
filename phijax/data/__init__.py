"""Tokenizers and the training data pipeline: sources → mixture → tokenize → pack → global batch.

A lazy namespace: `phijax.data.config` and friends import without pulling in grain or jax.
"""

from __future__ import annotations

from phijax.lazy import lazy_attributes

_LAZY = {"Tokenizer": "phijax.data.tokenizer", "load_tokenizer": "phijax.data.tokenizer"}
__all__ = list(_LAZY)

__getattr__ = lazy_attributes(__name__, _LAZY)

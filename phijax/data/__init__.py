"""Tokenizers and the training data pipeline: sources → mixture → tokenize → pack → global batch;
problem sets (`problems`: what PTS searches and evaluators judge).

A lazy namespace: `phijax.data.config` and friends import without pulling in grain or jax.
"""

from __future__ import annotations

from phijax.lazy import lazy_attributes

_LAZY = {
    "Tokenizer": "phijax.data.tokenizer",
    "load_tokenizer": "phijax.data.tokenizer",
    "read_problems": "phijax.data.problems",
    "curriculum_problems": "phijax.data.problems",
}
__all__ = list(_LAZY)

__getattr__ = lazy_attributes(__name__, _LAZY)

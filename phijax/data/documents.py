"""Tokenized documents: what sources' records become before they are mixed and packed.

A document is `tokens` (`[n]` int32: the record's tokens, then the end-of-document separator) and
`trained` (`[n]` int8: 1 where a token is a training target; all ones for plain text, assistant turns
only for chat). Packing turns it into n-1 (input, target) pairs: input `tokens[:-1]`, target
`tokens[1:]`, loss mask `trained[1:]`. A malformed record travels as a document with `bad` set, so
the mixture can count it (with its `file:line`) in its checkpointed state.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from phijax.data.records import BadRecord
from phijax.data.tokenizer import Tokenizer

_EMPTY = np.zeros(0, np.int32)


@dataclass(frozen=True)
class Document:
    """One tokenized record of source number `source` (or a skipped one, when `bad` is set)."""

    source: int
    tokens: np.ndarray = field(default_factory=lambda: _EMPTY)
    trained: np.ndarray = field(default_factory=lambda: _EMPTY)
    bad: str | None = None

    @property
    def num_targets(self) -> int:
        """Training positions this document fills when packed (tokens minus one)."""
        return max(len(self.tokens) - 1, 0)


class Tokenize:
    """Record → `Document` for source number `source` (a grain map transform; picklable)."""

    def __init__(self, tokenizer: Tokenizer, source: int, add_bos: bool = False):
        self.tokenizer = tokenizer
        self.source = source
        self.prefix = [tokenizer.bos_id] if add_bos else []
        self.suffix = [tokenizer.eod_id]

    def __call__(self, record: Any) -> Document:
        """`record` was checked by `phijax.data.sources` (a `BadRecord`, or usable text or chat)."""
        if isinstance(record, BadRecord):
            return Document(self.source, bad=str(record))
        if "text" in record:
            ids = self.tokenizer.encode(record["text"])
            trained = [1] * (len(self.prefix) + len(ids) + 1)
        else:
            ids, mask = self.tokenizer.format_chat(record["messages"])
            trained = [0] * len(self.prefix) + mask + [0]
        tokens = np.asarray(self.prefix + ids + self.suffix, np.int32)
        return Document(self.source, tokens, np.asarray(trained, np.int8))

"""The weighted mixture of sources: which source the next document comes from.

Weights are shares of *tokens*, not of documents (a source of long documents must not crowd out one
of short ones), so the next document is drawn from the source furthest behind its share: the active
source with the smallest `(tokens_drawn + mean document length) / weight`. This deterministic
scheduling keeps every row's realised shares within about one document of the weights, with no
random drift to wait out.

A source capped by `epochs` runs dry; `on_epoch_cap` decides what follows: `stop` ends the stream,
`renormalize` spreads its weight over the sources still active. Bad records are counted per source
(first few `file:line`s kept) and logged, or raise `DataError` under `strict`.

The iterator's state (the sources' grain states plus the counters) is a plain dict, so a resumed run
draws exactly the documents it would have drawn.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Literal

import grain

from phijax.data.documents import Document
from phijax.data.records import DataError

log = logging.getLogger("phijax.data")
MAX_BAD_EXAMPLES = 5  # `file:line`s kept per source (the count is exact)
MAX_BAD_WARNINGS = 10  # distinct bad records warned about per source before going quiet

OnEpochCap = Literal["stop", "renormalize"]


class MixtureDataset(grain.IterDataset):
    """Documents from `parents` (one grain dataset of `Document`s per source) in token shares `weights`."""

    def __init__(
        self,
        parents: Sequence[grain.IterDataset],
        weights: Sequence[float],
        names: Sequence[str],
        on_epoch_cap: OnEpochCap = "renormalize",
        strict: bool = False,
    ):
        super().__init__(list(parents))
        if len(weights) != len(parents) or not any(w > 0 for w in weights):
            raise DataError("data.sources needs at least one source with a positive weight")
        if any(w < 0 for w in weights):
            raise DataError("data.sources weights must be >= 0")
        self.weights = [float(w) for w in weights]
        self.names = list(names)
        self.on_epoch_cap = on_epoch_cap
        self.strict = strict

    def __iter__(self) -> MixtureIterator:
        return MixtureIterator(self)


_REPORTED: dict[str, set[str]] = {}  # source name → bad records already reported in this process


def report_bad_record(name: str, where: str) -> None:
    """Warn about a bad record once per process, however often it is re-read (epochs, rows, resumes);
    after `MAX_BAD_WARNINGS` distinct ones of a source, only counted (`distinct_bad_records`)."""
    seen = _REPORTED.setdefault(name, set())
    if where in seen:
        return
    seen.add(where)
    if len(seen) <= MAX_BAD_WARNINGS:
        more = "" if len(seen) < MAX_BAD_WARNINGS else " (further ones are counted, not shown)"
        log.warning("skipping bad record in data source `%s`: %s%s", name, where, more)


def distinct_bad_records() -> dict[str, int]:
    """Distinct bad records seen per source in this process."""
    return {name: len(seen) for name, seen in _REPORTED.items() if seen}


class MixtureIterator(grain.DatasetIterator):
    """Yields good `Document`s; counters: `tokens`, `docs`, `bad`, `bad_examples`, `exhausted`."""

    def __init__(self, ds: MixtureDataset):
        super().__init__([iter(p) for p in ds.parents])
        self._ds = ds
        n = len(ds.weights)
        self.tokens = [0] * n  # training positions drawn (what weights are shares of)
        self.docs = [0] * n
        self.bad = [0] * n
        self.bad_examples: list[list[str]] = [[] for _ in range(n)]
        self.exhausted = [w == 0 for w in ds.weights]

    def __next__(self) -> Document:
        while True:
            s = self._next_source()
            try:
                doc: Document = next(self._parents[s])
            except StopIteration:
                self._on_exhausted(s)
                continue
            if doc.bad is not None:
                self._on_bad(s, doc.bad)
                continue
            self.docs[s] += 1
            self.tokens[s] += doc.num_targets
            return doc

    def _next_source(self) -> int:
        active = [s for s, done in enumerate(self.exhausted) if not done]
        if not active:
            raise StopIteration
        return min(active, key=self._share_after_next)

    def _share_after_next(self, s: int) -> float:
        """Tokens per unit weight once source `s` adds a document of its mean length so far: picking
        the smallest finishes documents closest to the weights (weighted fair queueing)."""
        mean = self.tokens[s] / self.docs[s] if self.docs[s] else 0.0
        return (self.tokens[s] + mean) / self._ds.weights[s]

    def _on_exhausted(self, s: int) -> None:
        self.exhausted[s] = True
        if self._ds.on_epoch_cap == "stop":
            self.exhausted = [True] * len(self.exhausted)
            log.info("data source `%s` reached its epoch cap; stopping (on_epoch_cap: stop)", self._ds.names[s])

    def _on_bad(self, s: int, where: str) -> None:
        name = self._ds.names[s]
        if self._ds.strict:
            raise DataError(
                f"bad record in data source `{name}`: {where} "
                "(fix it, or set data.strict: false to skip and count bad records)"
            )
        self.bad[s] += 1
        if len(self.bad_examples[s]) < MAX_BAD_EXAMPLES:
            self.bad_examples[s].append(where)
        report_bad_record(name, where)

    def get_state(self) -> dict[str, Any]:
        return {
            "sources": [p.get_state() for p in self._parents],
            "tokens": list(self.tokens),
            "docs": list(self.docs),
            "bad": list(self.bad),
            "bad_examples": [list(e) for e in self.bad_examples],
            "exhausted": list(self.exhausted),
        }

    def set_state(self, state: dict[str, Any]) -> None:
        for parent, parent_state in zip(self._parents, state["sources"], strict=True):
            parent.set_state(parent_state)
        self.tokens = list(state["tokens"])
        self.docs = list(state["docs"])
        self.bad = list(state["bad"])
        self.bad_examples = [list(e) for e in state["bad_examples"]]
        self.exhausted = list(state["exhausted"])

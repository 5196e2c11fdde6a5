"""Data-source plumbing shared by every source: grain datasets over sources (files and records: `records`).

A source (built by a factory registered under `phijax_register_data_sources`) is either random-access
(`__len__` + `__getitem__`, grain's protocol) or a plain iterable of records. Records are dicts with
`text: str` or chat `messages: [{role, content}, ...]`. A source that meets a malformed record raises
`BadRecord(where, reason)` from `__getitem__` (or yields it, for iterables); the pipeline skips and
counts it, or stops with an error under `data.strict`.

`source_dataset` turns a source into the grain dataset one mixture row reads: a seeded global shuffle
per epoch (random-access) or the stream in order, capped at `epochs`, sharded by row.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import grain

from phijax.data.records import BadRecord, DataError, check_messages

# Synchronous reads: rows run many small pipelines, and threads per pipeline would swamp the host.
SYNC_READ = grain.ReadOptions(num_threads=0, prefetch_buffer_size=0)


def is_random_access(source: Any) -> bool:
    return hasattr(source, "__len__") and hasattr(source, "__getitem__")


def source_dataset(
    source: Any,
    name: str,
    *,
    epochs: float | None,
    seed: int,
    row: int,
    rows: int,
    transform: Callable[[Any], Any],
) -> grain.IterDataset:
    """The records of `source` that mixture row `row` of `rows` reads, mapped by `transform`.

    Random-access: one seeded permutation per epoch over the whole source; the concatenated epochs,
    capped at `epochs` (fractional allowed, None = unlimited), are dealt to rows round-robin.
    Iterable: the stream in order (re-iterated per epoch), dealt round-robin the same way; every row
    reads the whole stream to find its share, so prefer random-access sources for large data.
    """
    if is_random_access(source):
        length = len(source)
        if length == 0:
            raise DataError(f"data source `{name}` is empty: check its paths and filters")
        ds = grain.MapDataset.source(_GuardedSource(source, name)).shuffle(seed)
        ds = ds.repeat(None if epochs is None else max(1, math.ceil(epochs)))
        if epochs is not None:
            ds = ds[: round(epochs * length)]
        return ds[row::rows].map(transform).to_iter_dataset(SYNC_READ)
    if not isinstance(source, Iterable):
        raise DataError(
            f"data source `{name}` returned {type(source).__name__}: a source must be "
            "random-access (__len__, __getitem__) or an iterable of records"
        )
    return _StreamDataset(source, name, epochs, row, rows).map(transform)


class _GuardedSource:
    """Turns a `BadRecord` raised by `source[i]` into a value, so grain keeps going and we count it."""

    def __init__(self, source: Any, name: str):
        self._source = source
        self._name = name

    def __len__(self) -> int:
        return len(self._source)

    def __getitem__(self, index: int) -> Any:
        try:
            record = self._source[index]
        except BadRecord as bad:
            return bad
        return _where_if_bad(record, f"{self._name}[{index}]")


def _where_if_bad(record: Any, where: str) -> Any:
    """The record if it is usable, else a `BadRecord` saying where and why (to be counted)."""
    if isinstance(record, BadRecord):
        return record
    if not isinstance(record, dict) or not ("text" in record or "messages" in record):
        return BadRecord(where, "record has neither `text` nor `messages`")
    if "text" in record:
        if not isinstance(record["text"], str):
            return BadRecord(where, f"`text` must be a string, got {type(record['text']).__name__}")
        return record
    try:
        check_messages(record["messages"], where)
    except BadRecord as bad:
        return bad
    return record


class _StreamDataset(grain.IterDataset):
    """An iterable source as a grain dataset; resumable by counting what was consumed."""

    def __init__(self, source: Iterable, name: str, epochs: float | None, row: int, rows: int):
        super().__init__()
        self.source, self.name, self.epochs, self.row, self.rows = source, name, epochs, row, rows

    def __iter__(self) -> grain.DatasetIterator:
        return _StreamIterator(self)


class _StreamIterator(grain.DatasetIterator):
    def __init__(self, ds: _StreamDataset):
        super().__init__()
        self._ds = ds
        self._position = 0  # index into the endless concatenation of epochs, before sharding
        self._stream: Iterator[tuple[int, Any]] | None = None
        self._cap: int | None = None

    def _records(self, start: int) -> Iterator[tuple[int, Any]]:
        """(position, record) from `start` on, across epochs, up to the epoch cap."""
        position = 0
        while True:
            empty = True
            for record in self._ds.source:
                empty = False
                if self._cap is not None and position >= self._cap:
                    return
                if position >= start:
                    yield position, record
                position += 1
            if empty:
                raise DataError(f"data source `{self._ds.name}` yielded no records")

    def __next__(self) -> Any:
        if self._stream is None:
            if self._ds.epochs is not None and self._cap is None:
                self._cap = round(self._ds.epochs * sum(1 for _ in self._ds.source))
            self._stream = self._records(self._position)
        for position, record in self._stream:
            self._position = position + 1
            if position % self._ds.rows == self._ds.row:
                return _where_if_bad(record, f"{self._ds.name}[{position}]")
        raise StopIteration

    def get_state(self) -> dict[str, Any]:
        return {"position": self._position}

    def set_state(self, state: dict[str, Any]) -> None:
        self._position = int(state["position"])
        self._stream = None

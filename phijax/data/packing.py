"""Packing: a stream of documents into fixed-length rows, with segment ids and restarting positions.

Documents are laid end to end (concatenate, then split): a row of `seq_len` positions is filled with
whole documents and, at its end, the head of the next document, whose tail starts the following row
as a new segment. No token is dropped or duplicated, and nothing is padded except the final row of a
finite stream. With `mode="pad"` (for chat data, where a conversation cut in two loses its prompt) a
document that fits in a row but not in what is left of the current one starts the next row instead,
and the rest of the current row is padding; only documents longer than a row are split.

Each position holds one (input, target) pair from one document (see `phijax.data.documents`); within
a row, segment `k` (1-based; 0 is padding) is one document or one piece of one, and its `positions`
count 0, 1, 2, ... from its first position.

A row is a dict of `[seq_len]` int32 arrays: `input_ids`, `targets`, `positions`, `segment_ids`,
`loss_mask` (1 where the target is trained on), and `source_ids` (index of the mixture source, -1 on
padding). The state records the parent's state from before the document being split plus how far into
it the packer got, so a restored packer continues mid-document exactly.
"""

from __future__ import annotations

from typing import Any, Literal

import grain
import numpy as np

from phijax.data.documents import Document

ROW_KEYS = ("input_ids", "targets", "positions", "segment_ids", "loss_mask", "source_ids")


class PackedRowsDataset(grain.IterDataset):
    """Rows of `seq_len` positions packed from a dataset of `Document`s."""

    def __init__(self, parent: grain.IterDataset, seq_len: int, pad_id: int, mode: Literal["split", "pad"] = "split"):
        super().__init__(parent)
        if seq_len < 1:
            raise ValueError(f"seq_len must be positive, got {seq_len}")
        if mode not in ("split", "pad"):
            raise ValueError(f"packing mode must be `split` or `pad`, got {mode!r}")
        self.seq_len = seq_len
        self.pad_id = pad_id
        self.mode = mode

    def __iter__(self) -> PackedRowsIterator:
        return PackedRowsIterator(self)


class PackedRowsIterator(grain.DatasetIterator):
    def __init__(self, ds: PackedRowsDataset):
        super().__init__(iter(ds._parent))
        self._ds = ds
        self._doc: Document | None = None  # the document being packed
        self._offset = 0  # positions of `_doc` already emitted
        self._state_before_doc: dict[str, Any] | None = None
        self._done = False

    @property
    def mixture(self) -> Any:
        """The parent iterator (the mixture, in the pipeline), for its counters."""
        return self._parent

    def _next_doc(self) -> bool:
        """Load the next non-empty document; False at the end of the stream."""
        while True:
            state = self._parent.get_state()
            try:
                doc = next(self._parent)
            except StopIteration:
                self._done = True
                return False
            if doc.num_targets:
                self._doc, self._offset, self._state_before_doc = doc, 0, state
                return True

    def __next__(self) -> dict[str, np.ndarray]:
        if self._done:
            raise StopIteration
        row = _empty_row(self._ds.seq_len, self._ds.pad_id)
        filled, segment = 0, 0
        while filled < self._ds.seq_len:
            if self._doc is None and not self._next_doc():
                break
            if self._starts_next_row(filled):
                break
            segment += 1
            filled += self._place(row, filled, segment)
        if filled == 0:
            raise StopIteration
        return row

    def _starts_next_row(self, filled: int) -> bool:
        """In `pad` mode: whether the current document should wait for a fresh row."""
        length, free = self._doc.num_targets, self._ds.seq_len - filled
        return self._ds.mode == "pad" and self._offset == 0 and free < length <= self._ds.seq_len

    def _place(self, row: dict[str, np.ndarray], at: int, segment: int) -> int:
        """Copy as much of the current document as fits into `row` from position `at`; returns count."""
        doc, start = self._doc, self._offset
        n = min(self._ds.seq_len - at, doc.num_targets - start)
        span = slice(at, at + n)
        row["input_ids"][span] = doc.tokens[start : start + n]
        row["targets"][span] = doc.tokens[start + 1 : start + n + 1]
        row["loss_mask"][span] = doc.trained[start + 1 : start + n + 1]
        row["positions"][span] = np.arange(n, dtype=np.int32)
        row["segment_ids"][span] = segment
        row["source_ids"][span] = doc.source
        self._offset += n
        if self._offset == doc.num_targets:
            self._doc = None
        return n

    def get_state(self) -> dict[str, Any]:
        if self._doc is None:
            return {"parent": self._parent.get_state(), "offset": 0, "done": self._done}
        return {"parent": self._state_before_doc, "offset": self._offset, "done": self._done}

    def set_state(self, state: dict[str, Any]) -> None:
        self._parent.set_state(state["parent"])
        self._doc, self._offset, self._done = None, 0, bool(state["done"])
        if state["offset"]:
            self._next_doc()
            self._offset = int(state["offset"])


def _empty_row(seq_len: int, pad_id: int) -> dict[str, np.ndarray]:
    row = {key: np.zeros(seq_len, np.int32) for key in ROW_KEYS}
    row["input_ids"][:] = pad_id
    row["targets"][:] = pad_id
    row["source_ids"][:] = -1
    return row

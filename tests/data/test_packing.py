"""Packing against a direct reference: concatenate every document's (input, target) pairs, cut the
stream into rows, number the pieces; plus the invariants (no document crosses a segment, positions
restart, nothing lost or doubled) and exact resume mid-document."""

from __future__ import annotations

import grain
import numpy as np
import pytest

from phijax.data.documents import Document
from phijax.data.packing import PackedRowsDataset
from phijax.data.sources import SYNC_READ

SEQ_LEN = 32
PAD = 999_999


def documents(count: int = 60, seed: int = 0) -> list[Document]:
    """Documents whose token values name them: doc d's tokens are d*1000 + 0, 1, 2, ..."""
    rng = np.random.default_rng(seed)
    docs = []
    for d in range(count):
        n = int(rng.choice([1, 2, 3, 5, 17, SEQ_LEN, SEQ_LEN + 1, 2 * SEQ_LEN + 7, 90]))
        tokens = (d * 1000 + np.arange(n)).astype(np.int32)
        trained = rng.integers(0, 2, n).astype(np.int8)
        docs.append(Document(source=d % 3, tokens=tokens, trained=trained))
    return docs


def packed(docs: list[Document], mode: str = "split"):
    parent = grain.MapDataset.source(docs).to_iter_dataset(SYNC_READ)
    return iter(PackedRowsDataset(parent, SEQ_LEN, PAD, mode))


def reference_rows(docs: list[Document]) -> list[dict[str, np.ndarray]]:
    """Concatenate (input, target, mask, doc) over all documents, then cut every SEQ_LEN."""
    stream = [
        (int(t), int(nxt), int(m), d, doc.source)
        for d, doc in enumerate(docs)
        for t, nxt, m in zip(doc.tokens[:-1], doc.tokens[1:], doc.trained[1:])
    ]
    rows = []
    for start in range(0, len(stream), SEQ_LEN):
        chunk = stream[start : start + SEQ_LEN]
        row = {"input_ids": [], "targets": [], "loss_mask": [], "segment_ids": [], "positions": [], "source_ids": []}
        segment, position, last = 0, 0, None
        for t, nxt, m, d, s in chunk:
            if d != last:
                segment, position, last = segment + 1, 0, d
            for key, value in zip(row, (t, nxt, m, segment, position, s)):
                row[key].append(value)
            position += 1
        pad = SEQ_LEN - len(chunk)
        fill = {"input_ids": PAD, "targets": PAD, "source_ids": -1}
        rows.append({k: np.array(v + [fill.get(k, 0)] * pad) for k, v in row.items()})
    return rows


def test_rows_equal_the_concatenate_then_split_reference():
    docs = documents()
    got = list(packed(docs))
    want = reference_rows(docs)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        for key in w:
            np.testing.assert_array_equal(g[key], w[key], err_msg=key)
            assert g[key].dtype == np.int32 and g[key].shape == (SEQ_LEN,)


def test_no_segment_mixes_documents_and_positions_restart():
    for row in packed(documents(seed=1)):
        for segment in set(row["segment_ids"].tolist()) - {0}:
            where = row["segment_ids"] == segment
            owners = set((row["input_ids"][where] // 1000).tolist())
            assert len(owners) == 1
            np.testing.assert_array_equal(row["positions"][where], np.arange(where.sum()))
            assert np.all(row["targets"][where] == row["input_ids"][where] + 1)


def test_every_token_appears_exactly_once():
    docs = documents(seed=2)
    rows = list(packed(docs))
    inputs = np.concatenate([r["input_ids"][r["segment_ids"] > 0] for r in rows])
    expected = np.concatenate([d.tokens[:-1] for d in docs])
    np.testing.assert_array_equal(np.sort(inputs), np.sort(expected))
    assert len(inputs) == len(set(inputs.tolist()))
    padding = np.concatenate([r["segment_ids"] == 0 for r in rows])
    assert not padding[:-SEQ_LEN].any()  # only the last row pads


@pytest.mark.parametrize("mode", ["split", "pad"])
@pytest.mark.parametrize("stop_after", [0, 1, 3, 7])
def test_resume_mid_document_continues_exactly(stop_after, mode):
    docs = documents(seed=3)
    first = packed(docs, mode)
    for _ in range(stop_after):
        next(first)
    state = first.get_state()
    rest = list(first)
    resumed = packed(docs, mode)
    resumed.set_state(state)
    again = list(resumed)
    assert len(again) == len(rest)
    for a, b in zip(again, rest):
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])


def test_pad_mode_keeps_documents_that_fit_a_row_whole():
    docs = documents(seed=4)
    rows = list(packed(docs, "pad"))
    inputs = np.concatenate([r["input_ids"][r["segment_ids"] > 0] for r in rows])
    np.testing.assert_array_equal(np.sort(inputs), np.sort(np.concatenate([d.tokens[:-1] for d in docs])))
    for d, doc in enumerate(docs):
        holding = [
            i
            for i, r in enumerate(rows)
            if np.any(r["input_ids"] // 1000 == d) and np.any(r["segment_ids"][r["input_ids"] // 1000 == d] > 0)
        ]
        if 0 < doc.num_targets <= SEQ_LEN:
            assert len(holding) == 1, (d, doc.num_targets, holding)
    for r in rows:  # padding only after the last segment of a row
        segments = r["segment_ids"]
        assert np.all(np.diff((segments == 0).astype(int)) >= 0)
    assert sum(int((r["segment_ids"] == 0).sum()) for r in rows[:-1]) > 0  # it did pad

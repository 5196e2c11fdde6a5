"""The benchmark side, hashed in memory: long n-grams (13) as a set, short n-grams (7) per item.

Built once from the benchmark items (small next to the training corpus), minus the allow-list:
n-grams shared by at least `allow_min_items` items (answer-option boilerplate), n-grams frequent in a
reference corpus the user names, and the n-grams of a user file's phrases.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from phijax.config.loader import relative_note
from phijax.data.decontam.benchmarks import BenchmarkItem, read_items
from phijax.data.decontam.config import DecontamConfig, DecontamError
from phijax.data.decontam.ngrams import hash_documents, ngram_hashes
from phijax.data.records import BadRecord, DataError, LineIndex, expand_paths, text_record

BATCH_CHARS = 100_000  # text hashed per numpy batch: large enough to amortise, small enough for cache


class NgramSet:
    """A sorted `[k]` uint64 array with a bitmap pre-filter: membership of many hashes at once.

    `np.searchsorted` over millions of hashes costs a cache (and TLB) miss per level, about 2 µs a
    query. Here the bitmap (at least 32 bits per member, about 3% false positives) answers most
    misses with one look-up, and the rest go through a directory of buckets on the top bits (about
    4 members a bucket): two memory accesses instead of twenty-odd.
    """

    def __init__(self, hashes: np.ndarray):
        self.hashes = sorted_unique(np.asarray(hashes, np.uint64))[0]
        self.bits = max(20, int(np.ceil(np.log2(max(len(self.hashes), 1) * 32))))
        self.shift = np.uint64(64 - self.bits)
        self.bitmap = np.zeros(1 << (self.bits - 3), np.uint8)
        slots = self.hashes >> self.shift
        np.bitwise_or.at(self.bitmap, slots >> np.uint64(3), (1 << (slots & np.uint64(7))).astype(np.uint8))
        bucket_bits = max(1, int(np.ceil(np.log2(max(len(self.hashes), 1)))) - 2)
        self.bucket_shift = np.uint64(64 - bucket_bits)
        buckets = self.hashes >> self.bucket_shift  # sorted, since the hashes are
        self.bucket_starts = np.searchsorted(buckets, np.arange((1 << bucket_bits) + 1, dtype=np.uint64))
        self.bucket_max = int(np.diff(self.bucket_starts).max()) if len(self.hashes) else 0

    def __len__(self) -> int:
        return len(self.hashes)

    def find(self, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """`(hit [h] int64 indices into queries, slot [h] int64 indices into self.hashes)`."""
        slots = queries >> self.shift
        maybe = np.flatnonzero((self.bitmap[slots >> np.uint64(3)] >> (slots & np.uint64(7)).astype(np.uint8)) & 1)
        if not len(maybe) or not len(self.hashes):
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        wanted = queries[maybe]
        bucket = (wanted >> self.bucket_shift).astype(np.int64)
        first, stop = self.bucket_starts[bucket], self.bucket_starts[bucket + 1]
        slot = np.full(len(wanted), -1, np.int64)
        for j in range(self.bucket_max):  # scan each bucket (a few members) in lock step
            index = first + j
            live = index < stop
            if not live.any():
                break
            equal = live & (self.hashes[np.minimum(index, len(self.hashes) - 1)] == wanted)
            slot[equal] = index[equal]
        found = slot >= 0
        return maybe[found], slot[found]

    def contains(self, queries: np.ndarray) -> np.ndarray:
        """`[q]` bool: which queries are members."""
        out = np.zeros(len(queries), bool)
        out[self.find(queries)[0]] = True
        return out


@dataclass
class BenchmarkIndex:
    """Hashed benchmark n-grams. `items[i]` is item i; `long` maps a 13-gram to its first item
    (`long_item[slot]`); `short` with `short_ptr`/`short_items` (CSR) maps a 7-gram to every item
    holding it (allow-listed ones too: `short_allowed` says which); `short_counts[i]` is item i's
    number of distinct 7-grams."""

    config: DecontamConfig
    items: list[BenchmarkItem]
    long: NgramSet
    long_item: np.ndarray
    short: NgramSet
    short_ptr: np.ndarray
    short_items: np.ndarray
    short_counts: np.ndarray
    short_allowed: NgramSet
    stats: dict

    def items_of_short(self, slots: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For 7-gram slots `[s]`: `(owner [k] index into slots, item [k])`, one row per holder."""
        lengths = self.short_ptr[slots + 1] - self.short_ptr[slots]
        owner = np.repeat(np.arange(len(slots)), lengths)
        within = np.arange(len(owner)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        return owner, self.short_items[np.repeat(self.short_ptr[slots], lengths) + within]


def build_index(config: DecontamConfig, items: Iterable[BenchmarkItem] | None = None) -> BenchmarkIndex:
    """Hash every benchmark item (from `config.benchmarks`, or `items`) and apply the allow-list."""
    start = time.perf_counter()
    if items is None:
        if not config.benchmarks:
            raise DecontamError(
                "decontaminate.benchmarks is empty: add [{name: gsm8k, paths: [gsm8k.jsonl]}] or "
                "[{evaluator: exact_match, file: gsm8k.jsonl}]"
            )
        items = [item for spec in config.benchmarks for item in read_items(spec)]
    items = list(items)
    n, m = config.ngram, config.short_ngram
    long_pairs, short_pairs = _item_ngrams(items, (n, m))
    long_allowed = _shared_by_items(long_pairs, config.allow_min_items)
    short_allowed = _shared_by_items(short_pairs, config.allow_min_items)
    short_counts = np.bincount(short_pairs[1], minlength=len(items)).astype(np.int64)
    extra_long, extra_short = _extra_allowed(config, NgramSet(long_pairs[0]), NgramSet(short_pairs[0]))
    long_allowed = sorted_unique(np.concatenate([long_allowed, extra_long]))[0]
    short_allowed = sorted_unique(np.concatenate([short_allowed, extra_short]))[0]
    long_hashes, long_item = _first_holder(*_drop(long_pairs, long_allowed))
    # The short set keeps its allow-listed members (they are dropped at look-up): every shared long
    # n-gram starts with a shared short one, so one short look-up screens a clean document fully.
    uniq, first, _ = sorted_unique(short_pairs[0], presorted=True)
    ptr = np.append(first, len(short_pairs[0])).astype(np.int64)
    stats = {
        "items": len(items),
        "long_ngrams": len(long_hashes),
        "short_ngrams": len(uniq),
        "allow_listed_long": len(long_allowed),
        "allow_listed_short": len(short_allowed),
        "items_too_short": int((short_counts == 0).sum()),
        "build_seconds": round(time.perf_counter() - start, 3),
    }
    return BenchmarkIndex(
        config,
        items,
        NgramSet(long_hashes),
        long_item,
        NgramSet(uniq),
        ptr,
        short_pairs[1],
        short_counts,
        NgramSet(short_allowed),
        stats,
    )


def sorted_unique(values: np.ndarray, presorted: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`(distinct values, index of each one's first occurrence, counts)` of `[k]` values, by sorting.

    numpy 2's `np.unique` hashes, which is several times slower than a sort for random uint64.
    With `presorted`, `values` must already be sorted (indices then refer to it directly).
    """
    ordered = values if presorted else np.sort(values)
    first = (
        np.flatnonzero(np.concatenate([[True], ordered[1:] != ordered[:-1]])) if len(ordered) else np.zeros(0, np.int64)
    )
    counts = np.diff(np.append(first, len(ordered)))
    return ordered[first], first, counts


def _batches(texts: Sequence[str]) -> Iterator[tuple[int, list[str]]]:
    """`(first index, texts)` batches of about BATCH_CHARS characters."""
    first, size = 0, 0
    for i, text in enumerate(texts):
        size += len(text)
        if size >= BATCH_CHARS:
            yield first, list(texts[first : i + 1])
            first, size = i + 1, 0
    if first < len(texts):
        yield first, list(texts[first:])


def _item_ngrams(items: Sequence[BenchmarkItem], sizes: tuple[int, ...]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per size: distinct (hash [k] uint64, item [k] int64) pairs, sorted by hash then item."""
    out = []
    chunks: list[list[tuple[np.ndarray, np.ndarray]]] = [[] for _ in sizes]
    for first, texts in _batches([item.text for item in items]):
        hashed = hash_documents(texts)
        for s, n in enumerate(sizes):
            hashes, word = ngram_hashes(hashed, n)
            doc = np.searchsorted(hashed.doc_starts, word, side="right") - 1
            chunks[s].append((hashes, doc + first))
    for parts in chunks:
        hashes = np.concatenate([h for h, _ in parts] or [np.zeros(0, np.uint64)])
        owner = np.concatenate([d for _, d in parts] or [np.zeros(0, np.int64)])
        order = np.lexsort((owner, hashes))
        hashes, owner = hashes[order], owner[order]
        keep = np.ones(len(hashes), bool)
        keep[1:] = (hashes[1:] != hashes[:-1]) | (owner[1:] != owner[:-1])
        out.append((hashes[keep], owner[keep]))
    return out


def _shared_by_items(pairs: tuple[np.ndarray, np.ndarray], min_items: int) -> np.ndarray:
    """Hashes held by at least `min_items` distinct items (pairs are distinct and sorted by hash)."""
    if min_items <= 0 or not len(pairs[0]):
        return np.zeros(0, np.uint64)
    uniq, _, counts = sorted_unique(pairs[0], presorted=True)
    return uniq[counts >= min_items]


def _drop(pairs: tuple[np.ndarray, np.ndarray], allowed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    keep = ~NgramSet(allowed).contains(pairs[0])
    return pairs[0][keep], pairs[1][keep]


def _first_holder(hashes: np.ndarray, owner: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct hashes and, for each, the lowest item holding it (pairs sorted by hash, item)."""
    uniq, first, _ = sorted_unique(hashes, presorted=True)
    return uniq, owner[first]


def _extra_allowed(config: DecontamConfig, long: NgramSet, short: NgramSet) -> tuple[np.ndarray, np.ndarray]:
    """Allow-listed hashes from the reference corpus and the user file (both sizes)."""
    long_found: list[np.ndarray] = []
    short_found: list[np.ndarray] = []
    if config.allow_reference:
        texts = list(_reference_texts(config))
        for _, batch in _batches(texts):
            hashed = hash_documents(batch)
            for found, size, members in ((long_found, config.ngram, long), (short_found, config.short_ngram, short)):
                hashes, _ = ngram_hashes(hashed, size)
                found.append(hashes[members.contains(hashes)])
        long_found = [_frequent(long_found, config.allow_reference_min_count)]
        short_found = [_frequent(short_found, config.allow_reference_min_count)]
    if config.allow_file:
        phrases = _allow_file_lines(config.allow_file)
        for _, batch in _batches(phrases):
            hashed = hash_documents(batch)
            long_found.append(ngram_hashes(hashed, config.ngram)[0])
            short_found.append(ngram_hashes(hashed, config.short_ngram)[0])
    empty = np.zeros(0, np.uint64)
    return (
        sorted_unique(np.concatenate(long_found or [empty]))[0],
        sorted_unique(np.concatenate(short_found or [empty]))[0],
    )


def _frequent(found: list[np.ndarray], min_count: int) -> np.ndarray:
    if not found:
        return np.zeros(0, np.uint64)
    uniq, _, counts = sorted_unique(np.concatenate(found))
    return uniq[counts >= min_count]


def _reference_texts(config: DecontamConfig) -> Iterator[str]:
    """Documents of the allow-list reference corpus (JSONL, `allow_reference_field`)."""
    try:
        lines = LineIndex(expand_paths(config.allow_reference, "allow_reference"))
    except DataError as err:
        raise DecontamError(
            f"decontaminate.allow_reference: {err}".replace("data.sources", "allow_reference")
        ) from None
    for i in range(len(lines)):
        raw, where = lines.line(i)
        try:
            record = text_record(json.loads(raw), config.allow_reference_field, where)
        except ValueError as err:
            raise DecontamError(f"{where}: not valid JSON in the allow-list reference corpus ({err})") from None
        except BadRecord as err:
            raise DecontamError(f"{err}; set decontaminate.allow_reference_field") from None
        yield record_text(record)


def _allow_file_lines(path: str) -> list[str]:
    file = Path(path).expanduser()
    if not file.is_file():
        raise DecontamError(
            f"decontaminate.allow_file {path!r} does not exist{relative_note(path)}; fix the path or remove the key"
        )
    return [line for line in file.read_text(encoding="utf-8").splitlines() if line.strip()]


def record_text(record: dict) -> str:
    """The text a training record is checked by: `text`, or the chat messages' contents joined."""
    if "text" in record:
        return record["text"]
    return "\n".join(message["content"] for message in record["messages"])

"""Normalisation and 64-bit n-gram hashing, shared by the benchmark side and the training side.

Normalisation (Phi-4 report, appendix B.1): Unicode NFKC, lower case, punctuation (Unicode category
P*) deleted, split on whitespace (Python's `str.split`). `words(text)` is the reference definition;
`hash_documents` computes the same words' hashes for many documents at once in numpy, without a
Python-level loop over words, which is what makes the training side run at corpus speed.

Hashes are stable across processes and hosts (no Python `hash`, whose seed differs per process):
a word's hash is a polynomial over its UTF-8 bytes, finalised by splitmix64; an n-gram's hash is a
polynomial over its words' hashes, finalised again. Two different n-grams collide with probability
about 2^-64, negligible for billions of n-grams; hits are confirmed by their words anyway.
"""

from __future__ import annotations

import functools
import sys
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

_WORD, _SEPARATOR, _DELETED = 0, 1, 2


@functools.cache
def _classes() -> np.ndarray:
    """`[0x110000]` uint8: the class of every code point (word, separator or deleted punctuation).

    Built on first use (a second), not at import. Separators are exactly `str.isspace`, so the
    vectorised splitting matches `str.split`.
    """
    points = np.arange(sys.maxunicode + 1)
    classes = np.zeros(len(points), np.uint8)
    for c in points:
        char = chr(c)
        if char.isspace():
            classes[c] = _SEPARATOR
        elif unicodedata.category(char)[0] == "P":
            classes[c] = _DELETED
    return classes


@functools.cache
def _table() -> dict[int, str | None]:
    """`str.translate` table of `normalize`: punctuation deleted (whitespace is left to `split`)."""
    return dict.fromkeys(np.flatnonzero(_classes() == _DELETED).tolist())


_WORD_BASE = np.uint64(0x100000001B3)  # odd: the byte polynomial is invertible mod 2^64
_NGRAM_BASE = np.uint64(0x9E3779B97F4A7C15)
_LENGTH_SALT = np.uint64(0xD6E8FEB86659FD93)


def normalize(text: str) -> str:
    """NFKC, lower case, punctuation deleted; whitespace kept (split with `.split()`)."""
    return unicodedata.normalize("NFKC", text).lower().translate(_table())


def words(text: str) -> list[str]:
    """The normalised words of `text`: the reference definition (slow) that `hash_documents` matches."""
    return normalize(text).split()


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """Bijective 64-bit finaliser (splitmix64): spreads every input bit over every output bit."""
    x = x ^ (x >> np.uint64(30))
    x = x * np.uint64(0xBF58476D1CE4E5B9)
    x = x ^ (x >> np.uint64(27))
    x = x * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


@dataclass(frozen=True)
class HashedWords:
    """The normalised words of a batch of documents, concatenated.

    `hashes`: `[num_words]` uint64. `doc_starts`: `[num_docs + 1]` int64: document d's words are
    `hashes[doc_starts[d]:doc_starts[d + 1]]`. `points` (the normalised text as `[chars]` uint32
    code points) with `starts`/`ends` (`[num_words]` offsets into it) recovers words for reports.
    """

    hashes: np.ndarray
    doc_starts: np.ndarray
    points: np.ndarray
    starts: np.ndarray
    ends: np.ndarray

    def words(self, first: int, count: int) -> list[str]:
        """Normalised words `first .. first + count - 1` (indices into `hashes`)."""
        return [
            self.points[s:e].tobytes().decode("utf-32-le")
            for s, e in zip(self.starts[first : first + count], self.ends[first : first + count])
        ]

    def doc_lengths(self) -> np.ndarray:
        """`[num_docs]` words per document."""
        return np.diff(self.doc_starts)


def hash_documents(texts: Sequence[str]) -> HashedWords:
    """Hash the normalised words of `texts` (see module doc); equal words get equal hashes.

    Works on code points (UTF-32) so punctuation deletion and splitting are table look-ups in
    numpy. Runs fastest on batches of about 100 KB of text (numpy temporaries stay in cache).
    """
    points, kinds, offsets = _normalized_points(texts)
    separator = kinds == _SEPARATOR
    edges = np.diff(np.concatenate([[True], separator, [True]]).view(np.int8))
    starts, ends = np.flatnonzero(edges == -1), np.flatnonzero(edges == 1)
    # Word hash sum_k c_k B^k as a difference of prefix sums of c_i B^i, shifted back by B^-start:
    # four passes over the characters instead of a per-word loop (B is odd, so B^-1 exists mod 2^64).
    powers, inverse = _power_tables(len(points))
    prefix = np.zeros(len(points) + 1, np.uint64)
    np.cumsum(points * powers[: len(points)], out=prefix[1:])
    hashes = (prefix[ends] - prefix[starts]) * inverse[starts]
    hashes = _splitmix64(hashes ^ ((ends - starts).astype(np.uint64) * _LENGTH_SALT))
    return HashedWords(hashes, np.searchsorted(starts, offsets), points, starts, ends)


def _normalized_points(texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The normalised texts joined by newlines as `[chars]` uint32 code points, their `[chars]` uint8
    classes (word or separator), and `[num_docs + 1]` offsets of each text's start (the last is one
    past the end)."""
    parts = [unicodedata.normalize("NFKC", text).lower() for text in texts]
    offsets = np.zeros(len(parts) + 1, np.int64)
    np.cumsum(np.fromiter(map(len, parts), np.int64, len(parts)) + 1, out=offsets[1:])
    points = np.frombuffer("\n".join(parts).encode("utf-32-le"), np.uint32)
    kinds = _classes()[points]
    deleted = np.flatnonzero(kinds == _DELETED)
    if len(deleted):
        keep = kinds != _DELETED
        points, kinds = points[keep], kinds[keep]
        offsets -= np.searchsorted(deleted, offsets)
    return points, kinds, offsets


_TABLES: list[tuple[np.ndarray, np.ndarray]] = []


def _power_tables(n: int) -> tuple[np.ndarray, np.ndarray]:
    """`(B**i, B**-i)` mod 2^64 for `i < n` (at least), cached and grown by doubling."""
    if not _TABLES or len(_TABLES[0][0]) < n:
        size = 1 << max(16, (n - 1).bit_length())
        inverse_base = pow(int(_WORD_BASE), -1, 1 << 64)
        powers, inverse = np.ones(size, np.uint64), np.ones(size, np.uint64)
        done = 1
        while done < size:  # fill [done, 2*done) from [0, done): B^(done + i) = B^done * B^i
            step = min(done, size - done)
            powers[done : done + step] = powers[:step] * np.uint64(pow(int(_WORD_BASE), done, 1 << 64))
            inverse[done : done + step] = inverse[:step] * np.uint64(pow(inverse_base, done, 1 << 64))
            done += step
        _TABLES[:] = [(powers, inverse)]
    return _TABLES[0]


def ngram_hashes(hashed: HashedWords, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Every n-gram of every document: `(hashes [m] uint64, first_word [m] int64)`.

    `first_word` indexes `hashed.hashes`; n-grams never span two documents (windows that would are
    dropped), and a document shorter than `n` words has none.
    """
    w, total = hashed.hashes, len(hashed.hashes)
    if total < n:
        return np.zeros(0, np.uint64), np.zeros(0, np.int64)
    m = total - n + 1
    acc = w[:m].copy()
    for k in range(1, n):
        acc *= _NGRAM_BASE
        acc += w[k : k + m]
    inside = np.ones(m, bool)
    crossing = hashed.doc_starts[1:-1, None] - np.arange(1, n)  # windows that start n-1.. words before a doc
    inside[crossing[(crossing >= 0) & (crossing < m)]] = False
    first = np.flatnonzero(inside)
    return _splitmix64(acc[first] ^ np.uint64(n)), first


def ngram_hash_of(words_: Sequence[str], n: int) -> int:
    """Hash of one n-gram given as words (for allow-list files and tests)."""
    hashes, _ = ngram_hashes(hash_documents([" ".join(words_)]), n)
    return int(hashes[0])

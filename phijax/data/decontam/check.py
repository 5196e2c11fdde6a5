"""Per-document verdicts (Phi-4 report, appendix B.1, Algorithm 1).

For each training document, normalised like the benchmark items:
1. it shares a 13-gram with a benchmark item that is not allow-listed → `contaminated` (13-gram);
2. else ratio = shared 7-grams / min(#7-grams of the document, #7-grams of the item), maximised over
   items (the `min` is what catches short items): above `contaminated_ratio` → `contaminated`
   (7-gram); above `info_ratio` → `partial` (reported, kept); else `clean`.
N-grams are counted as distinct sets on both sides. `Decontaminator.check` is the pure entry point
for the data pipeline and the `decontam` synth stage; `check_batch` is the fast one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from phijax.data.decontam.benchmarks import BenchmarkItem
from phijax.data.decontam.config import DecontamConfig
from phijax.data.decontam.index import BenchmarkIndex, build_index
from phijax.data.decontam.ngrams import HashedWords, hash_documents, ngram_hashes, words

Status = Literal["clean", "partial", "contaminated"]


@dataclass(frozen=True)
class Verdict:
    """The outcome for one document; for a hit, which benchmark item and why."""

    status: Status
    reason: Literal["13-gram", "7-gram"] | None = None  # the long / short n-gram test
    benchmark: str | None = None
    item_id: str | None = None
    ngram: str | None = None  # the shared long n-gram, normalised
    ratio: float | None = None  # the best short n-gram overlap ratio

    @property
    def dropped(self) -> bool:
        return self.status == "contaminated"


CLEAN = Verdict("clean")


class Decontaminator:
    """Checks training text against an in-memory `BenchmarkIndex` (see module doc)."""

    def __init__(
        self, config: DecontamConfig, index: BenchmarkIndex | None = None, items: Sequence[BenchmarkItem] | None = None
    ):
        self.config = config
        self.index = index or build_index(config, items)

    def check(self, text: str) -> Verdict:
        """The verdict for one document (e.g. one synthetic output before it is written)."""
        return self.check_batch([text])[0]

    def check_batch(self, texts: Sequence[str]) -> list[Verdict]:
        """Verdicts for many documents at once; fastest with about 100 KB of text per call.

        A shared long n-gram starts with a shared short one, so documents without any short hit
        (nearly all, in real data) are clean after one look-up of their short n-grams.
        """
        hashed = hash_documents(texts)
        short = ngram_hashes(hashed, self.config.short_ngram)
        hit, slot = self.index.short.find(short[0])
        verdicts: list[Verdict | None] = [None] * len(texts)
        if len(hit):
            candidates = np.zeros(len(texts), bool)
            candidates[np.searchsorted(hashed.doc_starts, short[1][hit], side="right") - 1] = True
            verdicts = self._long_hits(hashed, candidates)
            undecided = candidates & np.array([v is None for v in verdicts])
            allowed = self.index.short_allowed.contains(short[0][hit])
            for doc, verdict in self._short_ratios(hashed, short, hit[~allowed], slot[~allowed], undecided).items():
                verdicts[doc] = verdict
        return [v or CLEAN for v in verdicts]

    def _long_hits(self, hashed: HashedWords, candidates: np.ndarray) -> list[Verdict | None]:
        """Verdicts of candidate documents with a (confirmed) long n-gram hit, None elsewhere."""
        n = self.config.ngram
        verdicts: list[Verdict | None] = [None] * len(candidates)
        hashes, first_word = ngram_hashes(hashed, n)
        hit, slot = self.index.long.find(hashes)
        docs = np.searchsorted(hashed.doc_starts, first_word[hit], side="right") - 1
        for doc, word, s in zip(docs.tolist(), first_word[hit].tolist(), slot.tolist()):
            if verdicts[doc] is not None or not candidates[doc]:
                continue
            gram = hashed.words(word, n)
            item = self.index.items[int(self.index.long_item[s])]
            if _contains(words(item.text), gram):  # confirm: rule out a 64-bit collision
                verdicts[doc] = Verdict("contaminated", "13-gram", item.benchmark, item.item_id, " ".join(gram))
        return verdicts

    def _short_ratios(
        self,
        hashed: HashedWords,
        short: tuple[np.ndarray, np.ndarray],
        hit: np.ndarray,
        slot: np.ndarray,
        undecided: np.ndarray,
    ) -> dict[int, Verdict]:
        """Verdicts from the short n-gram ratio for undecided documents, given the short n-grams
        `short` = (hashes, first word) and their non-allow-listed hits (`hit` into them, `slot`)."""
        hashes, first_word = short
        doc_of_hit = np.searchsorted(hashed.doc_starts, first_word[hit], side="right") - 1
        keep = undecided[doc_of_hit]
        out: dict[int, Verdict] = {}
        for doc in sorted(set(doc_of_hit[keep].tolist())):
            own = np.unique(slot[doc_of_hit == doc])  # distinct shared short n-grams
            lo, hi = np.searchsorted(first_word, hashed.doc_starts[doc : doc + 2])
            doc_total = len(np.unique(hashes[lo:hi]))
            _, item = self.index.items_of_short(own)
            items, shared = np.unique(item, return_counts=True)
            ratios = shared / np.minimum(doc_total, self.index.short_counts[items])
            best = int(np.argmax(ratios))
            verdict = self._by_ratio(float(ratios[best]), int(items[best]))
            if verdict is not None:
                out[doc] = verdict
        return out

    def _by_ratio(self, ratio: float, item_index: int) -> Verdict | None:
        if ratio <= self.config.info_ratio:
            return None
        status: Status = "contaminated" if ratio > self.config.contaminated_ratio else "partial"
        item = self.index.items[item_index]
        return Verdict(status, "7-gram", item.benchmark, item.item_id, ratio=round(ratio, 6))


def _contains(haystack: list[str], needle: list[str]) -> bool:
    """Whether `needle` occurs as consecutive words of `haystack`."""
    n = len(needle)
    return any(haystack[i : i + n] == needle for i in range(len(haystack) - n + 1))

"""The Phi-4 hybrid n-gram filter finds exactly what was planted, checked against a brute-force
pure-Python reference (sets of word tuples) written independently of the numpy implementation."""

from __future__ import annotations

import json
import random
import unicodedata

import pytest

from phijax.data.decontam import (
    BenchmarkItem,
    BenchmarkSpec,
    DecontamConfig,
    DecontamError,
    Decontaminator,
    decontam_config,
    read_items,
)
from phijax.data.decontam.ngrams import hash_documents, ngram_hashes

BOILERPLATE = "A) true, true B) false, false C) true, false D) false, true"


# ------------------------------------------------------------------------------- the reference
def ref_words(text: str) -> list[str]:
    text = unicodedata.normalize("NFKC", text).lower()
    return "".join(c for c in text if not unicodedata.category(c).startswith("P")).split()


def ref_grams(words: list[str], n: int) -> set[tuple[str, ...]]:
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


def ref_status(doc: str, items: list[BenchmarkItem], cfg: DecontamConfig) -> tuple[str, str | None]:
    """(status, benchmark) by the letter of Algorithm 1, with the item-count allow-list."""
    item_words = [ref_words(item.text) for item in items]
    allowed = {}
    for n in (cfg.ngram, cfg.short_ngram):
        counts: dict[tuple[str, ...], int] = {}
        for ws in item_words:
            for gram in ref_grams(ws, n):
                counts[gram] = counts.get(gram, 0) + 1
        allowed[n] = {g for g, c in counts.items() if cfg.allow_min_items and c >= cfg.allow_min_items}
    dw = ref_words(doc)
    for item, ws in zip(items, item_words):
        if (ref_grams(dw, cfg.ngram) & ref_grams(ws, cfg.ngram)) - allowed[cfg.ngram]:
            return "contaminated", item.benchmark
    best, best_item = 0.0, None
    doc7 = ref_grams(dw, cfg.short_ngram)
    for item, ws in zip(items, item_words):
        item7 = ref_grams(ws, cfg.short_ngram)
        if doc7 and item7:
            ratio = len((doc7 & item7) - allowed[cfg.short_ngram]) / min(len(doc7), len(item7))
            if ratio > best:
                best, best_item = ratio, item
    if best > cfg.contaminated_ratio:
        return "contaminated", best_item.benchmark
    if best > cfg.info_ratio:
        return "partial", best_item.benchmark
    return "clean", None


# ------------------------------------------------------------------------------- planted data
def random_text(rng: random.Random, vocab: list[str], n: int) -> str:
    return " ".join(rng.choice(vocab) for _ in range(n))


@pytest.fixture(scope="module")
def planted():
    rng = random.Random(7)
    vocab = ["".join(rng.choices("abcdefghijklmnopqrstuvwxyz", k=rng.randint(2, 9))) for _ in range(3000)]
    long_items = [BenchmarkItem("mmlu", f"m{i}", random_text(rng, vocab, 40) + " " + BOILERPLATE) for i in range(12)]
    short_items = [BenchmarkItem("gsm8k", f"g{i}", random_text(rng, vocab, 9)) for i in range(5)]
    items = long_items + short_items
    docs, expected = [], []
    for i in range(60):
        doc = random_text(rng, vocab, rng.randint(0, 200))
        kind = i % 6
        if kind == 1:  # a 13-gram of a long item, with case and punctuation variants
            ws = long_items[i % 12].text.split()[5:18]
            doc += " " + " ".join(w.upper() + rng.choice(["", ",", ".", "!"]) if rng.random() < 0.5 else w for w in ws)
            doc += " " + random_text(rng, vocab, 5)
        elif kind == 2:  # a whole short item: 3 of its 3 7-grams → ratio 1
            doc = doc + " “" + short_items[i % 5].text.title() + "”, " + random_text(rng, vocab, 3)
        elif kind == 3:  # the first 7 words of a short item: 1 of its 3 7-grams → ratio 1/3, partial
            doc = doc + " " + " ".join(short_items[i % 5].text.split()[:7]) + " " + random_text(rng, vocab, 3)
        elif kind == 4:  # allow-listed boilerplate, shared by all 12 long items
            doc = doc + " " + BOILERPLATE + " " + random_text(rng, vocab, 4)
        docs.append(doc)
        expected.append(kind)
    return items, docs, expected


def test_words_hashing_matches_the_reference_split():
    texts = ["Hello, World! It's a ﬁne day—isn't it?", "", "  \u00a0 ", "ÉCOLE\u2028école ß STRASSE", "a - b ... c"]
    hashed = hash_documents(texts)
    for d, text in enumerate(texts):
        start, stop = hashed.doc_starts[d], hashed.doc_starts[d + 1]
        assert hashed.words(start, stop - start) == ref_words(text)
    by_word = {}
    for w, h in zip(hashed.words(0, len(hashed.hashes)), hashed.hashes.tolist()):
        assert by_word.setdefault(w, h) == h  # equal words, equal hashes; "école" twice
    assert len(set(by_word.values())) == len(by_word)


def test_ngrams_never_span_two_documents():
    texts = ["a b c", "d e f g", "h", "i j k"]
    hashed = hash_documents(texts)
    _, first = ngram_hashes(hashed, 3)
    windows = [" ".join(hashed.words(f, 3)) for f in first.tolist()]
    assert windows == ["a b c", "d e f", "e f g", "i j k"]


def test_planted_contamination_matches_the_brute_force_reference(planted):
    items, docs, kinds = planted
    cfg = DecontamConfig()
    verdicts = Decontaminator(cfg, items=items).check_batch(docs)
    for doc, kind, verdict in zip(docs, kinds, verdicts):
        assert (verdict.status, verdict.benchmark) == ref_status(doc, items, cfg), (kind, doc)
    by_kind = {}
    for kind, verdict in zip(kinds, verdicts):
        by_kind.setdefault(kind, set()).add((verdict.status, verdict.reason))
    assert by_kind == {
        0: {("clean", None)},
        1: {("contaminated", "13-gram")},
        2: {("contaminated", "7-gram")},
        3: {("partial", "7-gram")},
        4: {("clean", None)},
        5: {("clean", None)},
    }


def test_13_gram_hit_reports_the_item_and_the_normalised_ngram(planted):
    items, _, _ = planted
    text = "Intro. " + " ".join(items[3].text.split()[10:23]).upper() + "!!"
    verdict = Decontaminator(DecontamConfig(), items=items).check(text)
    assert verdict.status == "contaminated" and verdict.reason == "13-gram"
    assert verdict.item_id == "m3" and verdict.ngram == " ".join(ref_words(items[3].text)[10:23])


def test_allow_listed_ngrams_from_items_and_file_are_not_flagged(tmp_path, planted):
    items, _, _ = planted
    doc = "Answer options: " + BOILERPLATE
    assert Decontaminator(DecontamConfig(), items=items).check(doc).status == "clean"
    strict = DecontamConfig(allow_min_items=0)
    assert Decontaminator(strict, items=items).check(doc).status == "contaminated"
    allow = tmp_path / "allow.txt"
    allow.write_text(BOILERPLATE + "\n")
    with_file = DecontamConfig(allow_min_items=0, allow_file=str(allow))
    assert Decontaminator(with_file, items=items).check(doc).status == "clean"


def test_allow_list_from_a_reference_corpus(tmp_path, planted):
    items, _, _ = planted
    corpus = tmp_path / "wiki.jsonl"
    corpus.write_text("".join(json.dumps({"text": f"page {i}: {BOILERPLATE}"}) + "\n" for i in range(6)))
    cfg = DecontamConfig(allow_min_items=0, allow_reference=(str(corpus),), allow_reference_min_count=5)
    assert Decontaminator(cfg, items=items).check(BOILERPLATE).status == "clean"
    rare = DecontamConfig(allow_min_items=0, allow_reference=(str(corpus),), allow_reference_min_count=7)
    assert Decontaminator(rare, items=items).check(BOILERPLATE).status == "contaminated"


def test_thresholds_are_configurable(planted):
    items, _, _ = planted
    text = " ".join(items[-1].text.split()[:8])  # 2 of the item's 3 7-grams; the doc has 2
    assert Decontaminator(DecontamConfig(), items=items).check(text).status == "contaminated"  # 2/min(2,3)=1
    longer = text + " zz yy xx ww vv uu"  # now 8 doc 7-grams: 2/min(8,3) = 0.667
    assert Decontaminator(DecontamConfig(contaminated_ratio=0.7), items=items).check(longer).status == "partial"
    assert (
        Decontaminator(DecontamConfig(contaminated_ratio=0.7, info_ratio=0.7), items=items).check(longer).status
        == "clean"
    )


def test_clean_random_text_flags_nothing(planted):
    items, _, _ = planted
    rng = random.Random(3)
    vocab = [f"w{i}" for i in range(5000)]
    docs = [random_text(rng, vocab, rng.randint(0, 300)) for _ in range(200)]
    assert {v.status for v in Decontaminator(DecontamConfig(), items=items).check_batch(docs)} == {"clean"}


# ------------------------------------------------------------------------------- benchmark files
def test_benchmark_formats_and_field_detection(tmp_path):
    mmlu = tmp_path / "mmlu.jsonl"
    mmlu.write_text(json.dumps({"question": "Q one?", "choices": ["x", "y"], "answer": 1}) + "\n\n")
    human = tmp_path / "he.jsonl"
    human.write_text(
        json.dumps(
            {
                "task_id": "HE/0",
                "prompt": "def f():",
                "canonical_solution": "return 1",
                "test": "assert f() == 1",
                "entry_point": "f",
            }
        )
        + "\n"
    )
    (item,) = read_items(BenchmarkSpec("mmlu", (str(mmlu),)))
    assert item.text == "Q one? x y 1" and item.item_id == f"{mmlu}:1"
    (item,) = read_items(BenchmarkSpec("he", (str(human),)))
    assert item.item_id == "HE/0" and item.text == "def f(): return 1 assert f() == 1"


def test_bad_benchmark_inputs_raise_one_line_errors(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"question": "ok"}) + "\n{oops\n")
    with pytest.raises(DecontamError, match=rf"{bad}:2: not valid JSON"):
        list(read_items(BenchmarkSpec("b", (str(bad),))))
    with pytest.raises(DecontamError, match=rf"{bad}:1: benchmark `b` item has no field `questoin`"):
        list(read_items(BenchmarkSpec("b", (str(bad),), ("questoin",))))
    with pytest.raises(DecontamError, match="benchmark `m`: no file matches"):
        list(read_items(BenchmarkSpec("m", (str(tmp_path / "missing.jsonl"),))))
    with pytest.raises(DecontamError, match="unknown key `treshold`"):
        decontam_config({"treshold": 0.3})
    with pytest.raises(DecontamError, match="info_ratio"):
        DecontamConfig(info_ratio=0.9, contaminated_ratio=0.5)

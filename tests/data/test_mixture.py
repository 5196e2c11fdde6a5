"""The mixture through the full pipeline: token shares follow the weights, epoch caps hold, batches
do not depend on the number of processes, and a restored iterator continues exactly."""

from __future__ import annotations

import collections
import json

import numpy as np
import pytest

from phijax.data.pipeline import build_batches
from phijax.data.records import DataError

from .conftest import WordsSource, make_config


def token_shares(batches: list[dict[str, np.ndarray]], n: int) -> np.ndarray:
    counts = np.array([sum(int((b["source_ids"] == s).sum()) for b in batches) for s in range(n)])
    return counts / counts.sum()


def take(iterator, n: int) -> list[dict[str, np.ndarray]]:
    return [next(iterator) for _ in range(n)]


@pytest.mark.parametrize("weights", [(0.5, 0.5), (0.2, 0.8), (0.7, 0.1, 0.2)])
def test_token_shares_follow_weights_over_50_batches(registry, phi4, weights):
    # Documents of very different lengths: weights are shares of tokens, not of documents.
    lengths = (150, 8, 40)
    sources = [
        {"name": f"s{i}", "source": "test_words", "prefix": f"s{i}_", "n": 500, "length": lengths[i], "weight": w}
        for i, w in enumerate(weights)
    ]
    it = build_batches(make_config(sources), tokenizer=phi4, with_sources=True)
    shares = token_shares(take(it, 50), len(weights))
    np.testing.assert_allclose(shares, np.array(weights) / sum(weights), atol=0.03)


def test_epoch_cap_renormalize_reads_each_document_exactly_epochs_times(registry, phi4):
    sources = [
        {"name": "small", "source": "test_words", "prefix": "a", "n": 30, "length": 10, "weight": 0.5, "epochs": 2},
        {"name": "big", "source": "test_words", "prefix": "b", "n": 10_000, "length": 10, "weight": 0.5},
    ]
    it = build_batches(make_config(sources, on_epoch_cap="renormalize"), tokenizer=phi4, with_sources=True)
    batches = take(it, 40)
    small = WordsSource.made[0]
    assert collections.Counter(small.reads) == {i: 2 for i in range(30)}
    assert sum(c["docs"] for c in it.source_counters()[:1]) == 60
    # After the cap, the remaining source takes all the weight.
    assert token_shares(batches[-5:], 2)[1] == 1.0


def test_fractional_epoch_cap(registry, phi4):
    sources = [
        {"name": "small", "source": "test_words", "prefix": "a", "n": 40, "length": 10, "epochs": 1.5},
        {"name": "big", "source": "test_words", "prefix": "b", "n": 10_000, "length": 10},
    ]
    it = build_batches(make_config(sources), tokenizer=phi4)
    take(it, 40)
    reads = collections.Counter(WordsSource.made[0].reads)
    assert sum(reads.values()) == 60 and set(reads) == set(range(40))
    assert sorted(collections.Counter(reads.values()).items()) == [(1, 20), (2, 20)]


def test_epoch_cap_stop_ends_the_batches(registry, phi4):
    sources = [
        {"name": "small", "source": "test_words", "prefix": "a", "n": 30, "length": 10, "epochs": 1},
        {"name": "big", "source": "test_words", "prefix": "b", "n": 10_000, "length": 10},
    ]
    it = build_batches(make_config(sources, on_epoch_cap="stop"), tokenizer=phi4)
    batches = list(it)
    assert 0 < len(batches) < 40
    assert len(WordsSource.made[0].reads) <= 30


@pytest.mark.parametrize("source", ["test_words", "test_stream"])
def test_two_processes_together_yield_the_single_process_batch(registry, phi4, source):
    sources = [
        {"name": "a", "source": source, "prefix": "a", "n": 50, "length": 30, "weight": 2},
        {"name": "b", "source": "test_words", "prefix": "b", "n": 70, "length": 7},
    ]
    cfg = make_config(sources, global_batch=4, seq_len=64)
    single = build_batches(cfg, tokenizer=phi4)
    halves = [build_batches(cfg, p, 2, tokenizer=phi4) for p in range(2)]
    for _ in range(12):
        whole = next(single)
        parts = [next(h) for h in halves]
        assert parts[0]["input_ids"].shape == (2, 64)
        for key in whole:
            np.testing.assert_array_equal(whole[key], np.concatenate([p[key] for p in parts]))


@pytest.mark.parametrize("source", ["test_words", "test_stream"])
def test_restored_iterator_yields_the_identical_next_batches(registry, phi4, source):
    sources = [
        {"name": "a", "source": source, "prefix": "a", "n": 40, "length": 45, "epochs": 3},
        {"name": "b", "source": "test_words", "prefix": "b", "n": 25, "length": 11},
    ]
    cfg = make_config(sources, seq_len=64)
    first = build_batches(cfg, tokenizer=phi4, with_sources=True)
    take(first, 7)
    state = json.loads(json.dumps(first.get_state()))  # what a checkpoint stores
    expected = take(first, 10)
    resumed = build_batches(cfg, tokenizer=phi4, with_sources=True)
    resumed.set_state(state)
    for want, got in zip(expected, take(resumed, 10)):
        for key in want:
            np.testing.assert_array_equal(want[key], got[key])
    assert resumed.source_counters() == first.source_counters()


def test_same_seed_same_batches_other_seed_other_batches(registry, phi4):
    sources = [{"name": "a", "source": "test_words", "prefix": "a", "n": 100, "length": 20}]
    runs = [next(build_batches(make_config(sources, seed=s), tokenizer=phi4))["input_ids"] for s in (0, 0, 1)]
    np.testing.assert_array_equal(runs[0], runs[1])
    assert not np.array_equal(runs[0], runs[2])


def test_state_from_another_process_layout_is_refused(registry, phi4):
    sources = [{"name": "a", "source": "test_words", "prefix": "a"}]
    cfg = make_config(sources)
    state = build_batches(cfg, 0, 2, tokenizer=phi4).get_state()
    with pytest.raises(DataError, match="same train.global_batch and process count"):
        build_batches(cfg, tokenizer=phi4).set_state(state)


def test_config_problems_fail_at_start_up(registry, phi4):
    one = [{"name": "a", "source": "test_words", "prefix": "a"}]
    with pytest.raises(DataError, match="split evenly"):
        build_batches(make_config(one, global_batch=3), 0, 2, tokenizer=phi4)
    with pytest.raises(DataError, match="unique"):
        build_batches(make_config(one + one), tokenizer=phi4)
    with pytest.raises(DataError, match="data.sources is empty"):
        build_batches(make_config([]), tokenizer=phi4)


def test_grain_checkpoint_handler_saves_and_restores_the_iterator(registry, phi4, tmp_path):
    import grain

    sources = [{"name": "a", "source": "test_words", "prefix": "a", "n": 40, "length": 45}]
    cfg = make_config(sources, seq_len=64)
    first = build_batches(cfg, tokenizer=phi4)
    take(first, 3)
    grain.checkpoint.CheckpointHandler().save(tmp_path, first)
    expected = next(first)
    resumed = grain.checkpoint.CheckpointHandler().restore(tmp_path, build_batches(cfg, tokenizer=phi4))
    np.testing.assert_array_equal(next(resumed)["input_ids"], expected["input_ids"])

"""Shared fixtures for the data tests: in-memory sources registered as a plugin, configs, tokenizer."""

from __future__ import annotations

from typing import Any

import pytest

from phijax.config import config_from_dict
from phijax.data import load_tokenizer
from phijax.plugins import hookimpl
from phijax.train.config import TrainJob


class WordsSource:
    """`n` documents `{prefix}{i}: w w w ...` of `length` words; records which indices were read."""

    made: list[WordsSource] = []

    def __init__(self, prefix: str, n: int = 100, length: int = 20):
        self.prefix, self.n, self.length = prefix, n, length
        self.reads: list[int] = []
        WordsSource.made.append(self)

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> dict[str, Any]:
        self.reads.append(index)
        return {"text": f"{self.prefix}{index}:" + " w" * self.length}


class StreamSource:
    """The same documents as `WordsSource`, as a plain iterable (the streaming path)."""

    def __init__(self, prefix: str, n: int = 100, length: int = 20):
        self.inner = WordsSource(prefix, n, length)

    def __iter__(self):
        return (self.inner[i] for i in range(self.inner.n))


class TestSources:
    """A plugin registering the in-memory sources above."""

    @hookimpl
    def phijax_register_data_sources(self, register):
        register("test_words", WordsSource)
        register("test_stream", StreamSource)


@pytest.fixture
def registry(phijax_registry):
    WordsSource.made.clear()
    return phijax_registry(TestSources())


@pytest.fixture(scope="session")
def phi4():
    return load_tokenizer()


def make_config(sources: list[dict[str, Any]], global_batch: int = 4, seq_len: int = 128, **data: Any) -> TrainJob:
    return config_from_dict(
        {"train": {"global_batch": global_batch, "seq_len": seq_len}, "data": {"sources": sources, **data}},
        root=TrainJob,
    )

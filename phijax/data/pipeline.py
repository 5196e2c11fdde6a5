"""The training data pipeline (grain): sources → mixture → tokenize → pack → global batch.

`build_batches(cfg, process_index, process_count)` returns a grain `DatasetIterator` over this
process's slice of each global batch, a dict of int32 numpy arrays, each `[rows, seq_len]` where
`rows = train.global_batch // process_count`:

- `input_ids`: token ids fed to the model (pad id on padding).
- `targets`: the token each position must predict (the next token of the same document).
- `positions`: position of the token within its segment, restarting at 0 for each segment.
- `segment_ids`: 1, 2, ... for the documents (or document pieces) of a row, 0 on padding.
- `loss_mask`: 1 where `targets` is trained on (0 on padding and on non-assistant chat tokens).
- `source_ids` (only with `with_sources=True`): index into `data.sources`, -1 on padding.

Row `r` of the global batch is its own packed stream, drawn from every source's `r`-th round-robin
share under its own mixture, so a batch depends only on `data.seed`, `train.global_batch` and the
config, never on the number of processes: process `p` of `P` yields rows `[p*rows, (p+1)*rows)` and
reads only their data. `get_state()` / `set_state()` (grain's iterator protocol; plain JSON-able
dicts, saved with orbax by grain's checkpoint handler) resume exactly: the next batch after a restore
is the batch that would have come next. With `on_epoch_cap: stop` the iterator ends at the first
batch that one of its rows cannot fill.
"""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Any, Sequence

import grain
import numpy as np

from phijax.config import Config, SourceSpec
from phijax.errors import PhijaxError
from phijax.data.documents import Tokenize
from phijax.data.mixture import MixtureDataset
from phijax.data.packing import ROW_KEYS, PackedRowsDataset
from phijax.data.sources import DataError, is_random_access, source_dataset
from phijax.data.tokenizer import Tokenizer, load_tokenizer

BATCH_KEYS = ROW_KEYS[:-1]  # source_ids only on request


def build_batches(
    cfg: Config, process_index: int = 0, process_count: int = 1, *,
    tokenizer: Tokenizer | None = None, with_sources: bool = False,
) -> BatchIterator:
    """This process's share of every global batch, as a resumable grain iterator (see module doc)."""
    return iter(build_dataset(cfg, process_index, process_count, tokenizer=tokenizer,
                              with_sources=with_sources))


def build_dataset(
    cfg: Config, process_index: int = 0, process_count: int = 1, *,
    tokenizer: Tokenizer | None = None, with_sources: bool = False,
) -> BatchDataset:
    """The grain dataset behind `build_batches` (to add prefetching or other grain stages)."""
    global_batch = cfg.train.global_batch
    if not 0 <= process_index < process_count or global_batch % process_count:
        raise DataError(
            f"train.global_batch ({global_batch}) must split evenly over {process_count} processes "
            f"(process index {process_index}); pick a multiple of the process count"
        )
    tokenizer = tokenizer or tokenizer_for(cfg.data.tokenizer)
    check_vocabulary(tokenizer, cfg)
    specs = cfg.data.sources
    if not specs:
        raise DataError("data.sources is empty: add at least one source, e.g. "
                        "data.sources=[{name: math, source: curriculum}]")
    sources = open_sources(specs)
    per_process = global_batch // process_count
    first = process_index * per_process
    rows = [
        _row_dataset(cfg, specs, sources, tokenizer, row)
        for row in range(first, first + per_process)
    ]
    lengths = [len(s) if is_random_access(s) else None for s in sources]
    return BatchDataset(rows, first, global_batch, with_sources, lengths)


def tokenizer_for(name: str) -> Tokenizer:
    """`data.tokenizer` → tokenizer; a relative path not found in the working directory is looked up
    relative to the phijax checkout (so `configs/tiny/tokenizer.json` works from anywhere in it)."""
    if name != "phi4":
        path = Path(name)
        checkout = Path(__file__).resolve().parents[2] / path
        if not path.is_absolute() and not path.exists() and checkout.exists():
            name = str(checkout)
    return load_tokenizer(name)


def check_vocabulary(tokenizer: Tokenizer, cfg: Config) -> None:
    if tokenizer.vocab_size > cfg.model.vocab_size:
        raise DataError(
            f"tokenizer {cfg.data.tokenizer} has {tokenizer.vocab_size} ids but model.vocab_size is "
            f"{cfg.model.vocab_size}; set data.tokenizer to match the model (or a larger vocab_size)"
        )


def open_sources(specs: Sequence[SourceSpec]) -> list[Any]:
    """Build every configured source once, through the plugin registry (errors at start-up)."""
    from phijax.plugins.registry import get_registry

    names = [spec.name for spec in specs]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise DataError(f"data.sources names must be unique; {duplicates[0]!r} appears twice")
    registry = get_registry()
    sources = []
    for spec in specs:
        try:
            sources.append(registry.create("data_sources", spec.source, **spec.options))
        except PhijaxError as err:
            raise DataError(f"data.sources entry `{spec.name}`: {err}") from err
    return sources


def source_seed(seed: int, name: str) -> int:
    """Shuffle seed of one source: stable across runs and hosts (unlike Python's `hash`)."""
    return zlib.crc32(f"{seed}:{name}".encode())


def _row_dataset(
    cfg: Config, specs: Sequence[SourceSpec], sources: Sequence[Any], tokenizer: Tokenizer, row: int,
) -> PackedRowsDataset:
    data = cfg.data
    per_source = [
        source_dataset(
            source, spec.name, epochs=spec.epochs, seed=source_seed(data.seed, spec.name),
            row=row, rows=cfg.train.global_batch,
            transform=Tokenize(tokenizer, index, add_bos=data.add_bos),
        )
        for index, (spec, source) in enumerate(zip(specs, sources))
    ]
    mixture = MixtureDataset(per_source, [s.weight for s in specs], [s.name for s in specs],
                             on_epoch_cap=data.on_epoch_cap, strict=data.strict)
    return PackedRowsDataset(mixture, cfg.train.seq_len, tokenizer.pad_id, data.packing)


# ---------------------------------------------------------------------------------------- batches
class BatchDataset(grain.IterDataset):
    """Rows `[first, first + len(rows))` of each global batch, stacked.

    `source_lengths`: records per epoch of each source (None for streamed ones), for statistics.
    """

    def __init__(self, rows: Sequence[PackedRowsDataset], first: int, global_batch: int,
                 with_sources: bool = False, source_lengths: Sequence[int | None] = ()):
        super().__init__(list(rows))
        self.first, self.global_batch, self.with_sources = first, global_batch, with_sources
        self.source_lengths = list(source_lengths)

    def __iter__(self) -> BatchIterator:
        return BatchIterator(self)


class BatchIterator(grain.DatasetIterator):
    """Yields `{key: int32 [rows, seq_len]}`; see the module docstring for the keys."""

    def __init__(self, ds: BatchDataset):
        super().__init__([iter(row) for row in ds.parents])
        self._ds = ds
        self._keys = ROW_KEYS if ds.with_sources else BATCH_KEYS

    def __next__(self) -> dict[str, np.ndarray]:
        rows = [next(row) for row in self._parents]  # StopIteration of any row ends the batches
        return {key: np.stack([r[key] for r in rows]) for key in self._keys}

    def get_state(self) -> dict[str, Any]:
        return {"first_row": self._ds.first, "global_batch": self._ds.global_batch,
                "rows": [row.get_state() for row in self._parents]}

    def set_state(self, state: dict[str, Any]) -> None:
        saved = (state["first_row"], state["global_batch"], len(state["rows"]))
        here = (self._ds.first, self._ds.global_batch, len(self._parents))
        if saved != here:
            raise DataError(
                f"data iterator state is for rows {saved[0]}..{saved[0] + saved[2] - 1} of a global "
                f"batch of {saved[1]}, but this process reads rows {here[0]}..{here[0] + here[2] - 1} "
                f"of {here[1]}; resume with the same train.global_batch and process count"
            )
        for row, row_state in zip(self._parents, state["rows"]):
            row.set_state(row_state)

    def source_counters(self) -> list[dict[str, Any]]:
        """Per source, summed over this process's rows: documents, tokens drawn, bad records."""
        mixtures = [row.mixture for row in self._parents]
        out = []
        for s in range(len(mixtures[0].docs)):
            examples = [w for m in mixtures for w in m.bad_examples[s]]
            out.append({
                "docs": sum(m.docs[s] for m in mixtures),
                "tokens_drawn": sum(m.tokens[s] for m in mixtures),
                "bad": sum(m.bad[s] for m in mixtures),
                "bad_examples": examples[:5],
                "exhausted_rows": sum(bool(m.exhausted[s]) for m in mixtures),
            })
        return out

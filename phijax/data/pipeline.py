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

import logging
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import grain
import numpy as np

from phijax.data.config import SourceSpec
from phijax.data.decontam.filter import decontaminated, passthrough
from phijax.data.documents import Tokenize
from phijax.data.mixture import MixtureDataset
from phijax.data.packing import ROW_KEYS, PackedRowsDataset
from phijax.data.records import DataError
from phijax.data.sources import is_random_access, source_dataset
from phijax.data.tokenizer import Tokenizer, load_tokenizer
from phijax.errors import PhijaxError
from phijax.train.config import TrainJob

BATCH_KEYS = ROW_KEYS[:-1]  # source_ids only on request
log = logging.getLogger(__name__)


class DataStateMismatch(DataError):
    """A checkpoint's data iterator state cannot be matched to this config's data.sources."""


def build_batches(
    cfg: TrainJob,
    process_index: int = 0,
    process_count: int = 1,
    *,
    tokenizer: Tokenizer | None = None,
    with_sources: bool = False,
) -> BatchIterator:
    """This process's share of every global batch, as a resumable grain iterator (see module doc)."""
    return iter(build_dataset(cfg, process_index, process_count, tokenizer=tokenizer, with_sources=with_sources))


def build_dataset(
    cfg: TrainJob,
    process_index: int = 0,
    process_count: int = 1,
    *,
    tokenizer: Tokenizer | None = None,
    with_sources: bool = False,
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
        raise DataError(
            "data.sources is empty: add at least one source, e.g. data.sources=[{name: math, source: curriculum}]"
        )
    sources = open_sources(specs)
    per_process = global_batch // process_count
    first = process_index * per_process
    rows = [_row_dataset(cfg, specs, sources, tokenizer, row) for row in range(first, first + per_process)]
    lengths = [len(s) if is_random_access(s) else None for s in sources]
    return BatchDataset(rows, first, global_batch, with_sources, lengths, [spec.name for spec in specs])


def tokenizer_for(name: str) -> Tokenizer:
    """`data.tokenizer` → tokenizer; a relative path not found in the working directory is looked up
    relative to the phijax checkout (so `configs/tiny/tokenizer.json` works from anywhere in it)."""
    if name != "phi4":
        path = Path(name)
        checkout = Path(__file__).resolve().parents[2] / path
        if not path.is_absolute() and not path.exists() and checkout.exists():
            name = str(checkout)
    return load_tokenizer(name)


def check_vocabulary(tokenizer: Tokenizer, cfg: TrainJob) -> None:
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
    cfg: TrainJob,
    specs: Sequence[SourceSpec],
    sources: Sequence[Any],
    tokenizer: Tokenizer,
    row: int,
) -> PackedRowsDataset:
    data = cfg.data
    check = data.decontaminate  # filters records before they are tokenized (phijax.data.decontam.filter)
    per_source = []
    for index, (spec, source) in enumerate(zip(specs, sources)):
        tokenize = Tokenize(tokenizer, index, add_bos=data.add_bos)
        records = source_dataset(
            source,
            spec.name,
            epochs=spec.epochs,
            seed=source_seed(data.seed, spec.name),
            row=row,
            rows=cfg.train.global_batch,
            transform=tokenize if check is None else passthrough,
        )
        per_source.append(decontaminated(records, check, tokenize))
    mixture = MixtureDataset(
        per_source,
        [s.weight for s in specs],
        [s.name for s in specs],
        on_epoch_cap=data.on_epoch_cap,
        strict=data.strict,
    )
    return PackedRowsDataset(mixture, cfg.train.seq_len, tokenizer.pad_id, data.packing)


# ---------------------------------------------------------------------------------------- batches
class BatchDataset(grain.IterDataset):
    """Rows `[first, first + len(rows))` of each global batch, stacked.

    `source_lengths`: records per epoch of each source (None for streamed ones), for statistics.
    `source_names`: `data.sources` names, saved with the state so a resume can match sources by name.
    """

    def __init__(
        self,
        rows: Sequence[PackedRowsDataset],
        first: int,
        global_batch: int,
        with_sources: bool = False,
        source_lengths: Sequence[int | None] = (),
        source_names: Sequence[str] = (),
    ):
        super().__init__(list(rows))
        self.first, self.global_batch, self.with_sources = first, global_batch, with_sources
        self.source_lengths = list(source_lengths)
        self.source_names = list(source_names)

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
        return {
            "first_row": self._ds.first,
            "global_batch": self._ds.global_batch,
            "sources": list(self._ds.source_names),
            "rows": [row.get_state() for row in self._parents],
        }

    def set_state(self, state: dict[str, Any]) -> None:
        state = self._matched_sources(state)
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

    def _matched_sources(self, state: dict[str, Any]) -> dict[str, Any]:
        """`state` with its per-source positions matched by name to this config's `data.sources`
        (a new source starts fresh, a removed one is dropped, one info line each)."""
        names, saved = list(self._ds.source_names), state.get("sources")
        if saved is None or not names:
            count = len(state["rows"][0]["parent"]["sources"]) if state["rows"] else len(names)
            if names and count != len(names):
                raise DataStateMismatch(
                    f"the checkpoint's data iterator state holds {count} source(s) and data.sources has "
                    f"{len(names)}; it was saved without source names, so they cannot be matched: resume with the "
                    "data.sources it was saved with, or start a new run_dir with checkpoint.init_from=<step dir>"
                )
            return state
        if list(saved) == names:
            return state
        for name in sorted(set(names) - set(saved)):
            log.info("data source `%s` is new since the checkpoint: it starts from its beginning", name)
        for name in sorted(set(saved) - set(names)):
            log.info("data source `%s` is no longer in data.sources: its saved position is dropped", name)
        fresh = [row.get_state() for row in self._parents]
        rows = [remap_row_state(old, new, list(saved), names) for old, new in zip(state["rows"], fresh)]
        return {**state, "sources": names, "rows": rows}

    def set_state_from_processes(self, states: Sequence[dict[str, Any]]) -> None:
        """Resume from the states saved by every process of a run with another process count.

        Each row is its own stream (module doc), so this process's rows are picked out of the saved
        ones by global row index; `regroup_row_states` says what cannot be mapped.
        """
        self.set_state(regroup_row_states(states, self._ds.first, len(self._parents), self._ds.global_batch))

    def source_counters(self) -> list[dict[str, Any]]:
        """Per source, summed over this process's rows: documents, tokens drawn, bad records."""
        mixtures = [row.mixture for row in self._parents]
        out = []
        for s in range(len(mixtures[0].docs)):
            examples = [w for m in mixtures for w in m.bad_examples[s]]
            out.append(
                {
                    "docs": sum(m.docs[s] for m in mixtures),
                    "tokens_drawn": sum(m.tokens[s] for m in mixtures),
                    "bad": sum(m.bad[s] for m in mixtures),
                    "bad_examples": examples[:5],
                    "exhausted_rows": sum(bool(m.exhausted[s]) for m in mixtures),
                }
            )
        return out


def regroup_row_states(
    states: Sequence[dict[str, Any]], first_row: int, rows: int, global_batch: int
) -> dict[str, Any]:
    """The `BatchIterator` state of rows `[first_row, first_row + rows)` from the states that the
    processes of an earlier run saved (any process count, any order); DataError when they do not
    hold every one of those rows of the same global batch."""
    by_row: dict[int, Any] = {}
    for state in states:
        if state["global_batch"] != global_batch:
            raise DataError(
                f"the data iterator was saved with train.global_batch {state['global_batch']}, this run has "
                f"{global_batch}: resume with train.global_batch={state['global_batch']}"
            )
        by_row.update((state["first_row"] + i, row) for i, row in enumerate(state["rows"]))
    missing = [r for r in range(first_row, first_row + rows) if r not in by_row]
    if missing:
        raise DataError(
            f"the saved data iterator states lack rows {missing[0]}..{missing[-1]} of the global batch "
            "(a process's file is missing from the checkpoint): resume with the process count that saved it"
        )
    names = next((state["sources"] for state in states if "sources" in state), None)
    return {
        "first_row": first_row,
        "global_batch": global_batch,
        **({} if names is None else {"sources": names}),
        "rows": [by_row[r] for r in range(first_row, first_row + rows)],
    }


MIXTURE_LISTS = ("sources", "tokens", "docs", "bad", "bad_examples", "exhausted")  # one entry per source


def remap_row_state(
    saved: dict[str, Any], fresh: dict[str, Any], saved_names: list[str], names: list[str]
) -> dict[str, Any]:
    """A packed row's state whose mixture lists follow `names`: each source's entry from `saved` when it
    was there, else from `fresh` (its state before any read). A partly packed document is dropped (the
    row starts at a document boundary): which source comes next depends on the mixture's shares."""
    mixture, new = saved["parent"], fresh["parent"]
    where = {name: i for i, name in enumerate(saved_names)}
    parent = dict(mixture)
    for key in MIXTURE_LISTS:
        parent[key] = [mixture[key][where[n]] if n in where else new[key][j] for j, n in enumerate(names)]
    return {**saved, "parent": parent, "offset": 0, "done": False}

"""`data.decontaminate`: drop contaminated documents on the fly, inside the resumable grain pipeline.

Each source's record stream passes through `DecontamFilterDataset` before tokenization: contaminated
records are skipped, every verdict is counted per source, and the counts travel in the iterator state
next to the source's own state, so a restored run skips exactly the same documents and reports the
same counts (`phijax data stats` shows them). The check is per document (`Decontaminator.check`),
far cheaper than the training step that consumes it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import grain

from phijax.data.decontam.check import Decontaminator
from phijax.data.decontam.config import DecontamConfig
from phijax.data.decontam.index import record_text
from phijax.data.records import BadRecord

COUNT_KEYS = ("checked", "clean", "partial", "contaminated")
MAX_EXAMPLES = 5  # flagged documents kept per source and row (benchmark:item), the counts are exact


def passthrough(record: Any) -> Any:
    """The identity transform: records stay records until the filter has seen their text."""
    return record


@functools.lru_cache(maxsize=4)
def decontaminator_for(config: DecontamConfig) -> Decontaminator:
    """One index per setting per process, shared by every row and source of the pipeline."""
    return Decontaminator(config)


def decontaminated(
    dataset: grain.IterDataset, config: DecontamConfig | None, transform: Callable[[Any], Any]
) -> grain.IterDataset:
    """`dataset` (of records) filtered and then mapped by `transform`; unchanged without a config.

    Without a config, `dataset` must already be mapped by `transform` (the pipeline passes
    `passthrough` to the source only when it decontaminates).
    """
    if config is None:
        return dataset
    return DecontamFilterDataset(dataset, decontaminator_for(config), transform)


class DecontamFilterDataset(grain.IterDataset):
    """Records of `parent` minus contaminated ones, each mapped by `transform`."""

    def __init__(self, parent: grain.IterDataset, decontaminator: Decontaminator, transform: Callable[[Any], Any]):
        super().__init__(parent)
        self.decontaminator, self.transform = decontaminator, transform

    def __iter__(self) -> DecontamFilterIterator:
        return DecontamFilterIterator(self)


class DecontamFilterIterator(grain.DatasetIterator):
    """Yields `transform(record)` for kept records; `counts` and `examples` say what was checked."""

    def __init__(self, ds: DecontamFilterDataset):
        super().__init__(iter(ds.parents[0]))
        self._ds = ds
        self.counts = dict.fromkeys(COUNT_KEYS, 0)
        self.examples: list[str] = []

    def __next__(self) -> Any:
        while True:
            record = next(self._parent)
            if isinstance(record, BadRecord):  # counted by the mixture, as without decontamination
                return self._ds.transform(record)
            verdict = self._ds.decontaminator.check(record_text(record))
            self.counts["checked"] += 1
            self.counts[verdict.status] += 1
            if verdict.status != "clean" and len(self.examples) < MAX_EXAMPLES:
                self.examples.append(f"{verdict.status}: {verdict.benchmark}:{verdict.item_id}")
            if not verdict.dropped:
                return self._ds.transform(record)

    def get_state(self) -> dict[str, Any]:
        return {"parent": self._parent.get_state(), "decontam": dict(self.counts), "examples": list(self.examples)}

    def set_state(self, state: dict[str, Any]) -> None:
        self._parent.set_state(state["parent"])
        self.counts = dict(state["decontam"])
        self.examples = list(state["examples"])


def decontam_counts(batch_iterator: Any) -> list[dict[str, Any] | None]:
    """Per source, summed over the rows of a pipeline `BatchIterator`: the decontamination counts
    (None for a pipeline without `data.decontaminate`)."""
    mixtures = [row.mixture for row in batch_iterator._parents]
    out: list[dict[str, Any] | None] = []
    for s in range(len(mixtures[0]._parents)):
        filters = [m._parents[s] for m in mixtures if isinstance(m._parents[s], DecontamFilterIterator)]
        if not filters:
            out.append(None)
            continue
        counts = {key: sum(f.counts[key] for f in filters) for key in COUNT_KEYS}
        out.append(counts | {"examples": [e for f in filters for e in f.examples][:MAX_EXAMPLES]})
    return out

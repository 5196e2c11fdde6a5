"""Decontamination: the Phi-4 hybrid n-gram filter (report appendix B.1), at corpus speed.

- `config`: `DecontamConfig` (`data.decontaminate`) and `BenchmarkSpec`; pure, no numpy.
- `ngrams`: the shared normalisation and 64-bit n-gram hashing (numpy, no loop over words).
- `benchmarks`: benchmark items from JSONL files in the evaluators' formats, or from an evaluator's `items()`.
- `index`: the hashed benchmark side and the allow-list.
- `check`: per-document verdicts (`Decontaminator.check(text) -> Verdict`), the pure API the data
  pipeline and the synth pipeline call.
- `filter`: the on-the-fly training-data filter (`data.decontaminate`), resumable.
- `run`: `phijax data decontam` (sharded over processes and hosts; cleaned shards and reports).

A lazy namespace, so `phijax.data.config` can import `DecontamConfig` without numpy or grain.
"""

from __future__ import annotations

from phijax.lazy import lazy_attributes

_LAZY = {
    "BenchmarkSpec": "phijax.data.decontam.config",
    "DecontamConfig": "phijax.data.decontam.config",
    "DecontamError": "phijax.data.decontam.config",
    "decontam_config": "phijax.data.decontam.config",
    "BenchmarkItem": "phijax.data.decontam.benchmarks",
    "read_items": "phijax.data.decontam.benchmarks",
    "BenchmarkIndex": "phijax.data.decontam.index",
    "build_index": "phijax.data.decontam.index",
    "Decontaminator": "phijax.data.decontam.check",
    "Verdict": "phijax.data.decontam.check",
    "normalize": "phijax.data.decontam.ngrams",
    "words": "phijax.data.decontam.ngrams",
}
__all__ = list(_LAZY)

__getattr__ = lazy_attributes(__name__, _LAZY)

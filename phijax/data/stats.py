"""`phijax data stats`: iterate N global batches of a config and report what the mixture delivered.

Per source: documents drawn, tokens in the batches (non-padding positions), realised token share next
to the configured weight, epochs consumed (documents read / source size, for random-access sources),
skipped bad records with their first `file:line`s. Overall: padding fraction and pipeline tokens/s.
"""

from __future__ import annotations

import json
import time
from typing import Any

import numpy as np

from phijax.train.config import TrainJob


def data_stats(cfg: TrainJob, batches: int) -> dict[str, Any]:
    """Run the pipeline for `batches` global batches (one process) and summarise it as a dict.

    The key `token_share` maps each source name to its realised share of non-padding tokens.
    """
    from phijax.data.pipeline import build_dataset

    if batches < 1:
        raise ValueError(f"--batches must be at least 1, got {batches}")
    dataset = build_dataset(cfg, with_sources=True)
    iterator = iter(dataset)
    specs = cfg.data.sources
    tokens = np.zeros(len(specs), np.int64)
    positions = done = 0
    start = time.perf_counter()
    for batch in iterator:
        source_ids = batch["source_ids"]
        tokens += np.bincount(source_ids[source_ids >= 0], minlength=len(specs))
        positions += source_ids.size
        done += 1
        if done == batches:
            break
    seconds = time.perf_counter() - start
    report = _report(cfg, dataset.source_lengths, iterator.source_counters(), tokens, positions, done, seconds)
    return _with_decontam_counts(report, iterator)


def _with_decontam_counts(report: dict[str, Any], iterator: Any) -> dict[str, Any]:
    """Add `decontaminated` (checked/clean/partial/contaminated counts) to each source, when the
    pipeline runs with `data.decontaminate`."""
    from phijax.data.decontam.filter import decontam_counts

    for source, counts in zip(report["sources"].values(), decontam_counts(iterator)):
        if counts is not None:
            source["decontaminated"] = counts
    return report


def _report(
    cfg: TrainJob,
    lengths: list[int | None],
    counters: list[dict[str, Any]],
    tokens: np.ndarray,
    positions: int,
    batches: int,
    seconds: float,
) -> dict[str, Any]:
    total = int(tokens.sum())
    weights = np.array([s.weight for s in cfg.data.sources])
    sources = {}
    for i, spec in enumerate(cfg.data.sources):
        count, length = counters[i], lengths[i]
        read = count["docs"] + count["bad"]
        sources[spec.name] = {
            "weight": float(weights[i] / weights.sum()),
            "documents": count["docs"],
            "tokens": int(tokens[i]),
            "token_share": float(tokens[i] / total) if total else 0.0,
            "epochs": read / length if length else None,
            "epoch_cap": spec.epochs,
            "skipped": count["bad"],
            "skipped_examples": count["bad_examples"],
        }
    return {
        "batches": batches,
        "global_batch": cfg.train.global_batch,
        "seq_len": cfg.train.seq_len,
        "tokens": total,
        "padding_fraction": 1 - total / positions if positions else 0.0,
        "tokens_per_s": total / seconds if seconds > 0 else 0.0,
        "token_share": {name: s["token_share"] for name, s in sources.items()},
        "sources": sources,
    }


def format_stats(report: dict[str, Any]) -> str:
    """The report as a table for people; `json.dumps(report)` is the one for programs."""
    lines = [
        f"{report['batches']} batches of {report['global_batch']} x {report['seq_len']}: "
        f"{report['tokens']:,} tokens, padding {report['padding_fraction']:.2%}, "
        f"{report['tokens_per_s']:,.0f} tokens/s",
        f"{'source':<16}{'weight':>8}{'share':>8}{'documents':>11}{'tokens':>12}{'epochs':>10}{'skipped':>9}",
    ]
    for name, s in report["sources"].items():
        epochs = "-" if s["epochs"] is None else f"{s['epochs']:.4g}"
        lines.append(
            f"{name:<16}{s['weight']:>8.3f}{s['token_share']:>8.3f}{s['documents']:>11,}"
            f"{s['tokens']:>12,}{epochs:>10}{s['skipped']:>9,}"
        )
    for name, s in report["sources"].items():
        if "decontaminated" in s:
            c = s["decontaminated"]
            lines.append(
                f"decontaminated {name}: {c['checked']:,} checked, {c['contaminated']:,} dropped, "
                f"{c['partial']:,} partial"
            )
    for name, s in report["sources"].items():
        for where in s["skipped_examples"]:
            lines.append(f"skipped in {name}: {where}")
    return "\n".join(lines)


def print_stats(cfg: TrainJob, batches: int, as_json: bool) -> None:
    """Body of `phijax data stats`."""
    report = data_stats(cfg, batches)
    print(json.dumps(report) if as_json else format_stats(report))

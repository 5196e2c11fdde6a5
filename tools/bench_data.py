"""Benchmark the data pipeline: tokens/s through tokenize + mix + pack, on this machine, one process.

    python tools/bench_data.py [--batches 50] [--out runs/bench_data.json]

Cases cover both tokenizers (Phi-4's tiktoken BPE, the tiny configs' HF BPE), the embedded curriculum
alone and mixed with a JSONL web-like source, and the two sequence lengths we train at. Each case
builds the pipeline, discards one warm-up batch, then times `--batches` global batches. Prints a
table and writes the numbers as JSON.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

from phijax.config import config_from_dict
from phijax.data.curriculum import make_problem
from phijax.data.pipeline import build_batches, tokenizer_for
from phijax.train.config import TrainJob

CASES = [
    # name, tokenizer, sources, global_batch, seq_len
    ("phi4 curriculum", "phi4", "curriculum", 8, 4096),
    ("phi4 curriculum+jsonl", "phi4", "mixed", 8, 4096),
    ("tiny curriculum", "configs/tiny/tokenizer.json", "curriculum", 16, 512),
    ("tiny curriculum+jsonl", "configs/tiny/tokenizer.json", "mixed", 16, 512),
]


def write_web_jsonl(folder: Path, documents: int = 2000) -> Path:
    """Web-like documents (prose made of curriculum sentences, varied lengths), one JSON per line."""
    path = folder / "web.jsonl"
    with path.open("w") as f:
        for i in range(documents):
            body = " ".join(make_problem(7, i * 3 + k).solution for k in range(1 + i % 5))
            f.write(json.dumps({"text": body}) + "\n")
    return path


def sources_for(kind: str, web: Path) -> list[dict[str, Any]]:
    curriculum = {"name": "curriculum", "source": "curriculum", "weight": 0.6}
    if kind == "curriculum":
        return [curriculum]
    return [curriculum, {"name": "web", "source": "jsonl", "paths": [str(web)], "weight": 0.4}]


def run_case(
    name: str, tokenizer: str, kind: str, global_batch: int, seq_len: int, batches: int, web: Path
) -> dict[str, Any]:
    cfg = config_from_dict(
        {
            "data": {"tokenizer": tokenizer, "sources": sources_for(kind, web)},
            "train": {"global_batch": global_batch, "seq_len": seq_len},
        },
        root=TrainJob,
    )
    iterator = build_batches(cfg, tokenizer=tokenizer_for(tokenizer))
    next(iterator)  # warm-up: file scans, first documents
    start = time.perf_counter()
    tokens = 0
    for _ in range(batches):
        tokens += int((next(iterator)["segment_ids"] > 0).sum())
    seconds = time.perf_counter() - start
    return {
        "case": name,
        "tokenizer": tokenizer,
        "global_batch": global_batch,
        "seq_len": seq_len,
        "batches": batches,
        "tokens": tokens,
        "seconds": seconds,
        "tokens_per_s": tokens / seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=50)
    parser.add_argument("--out", type=Path, default=Path("runs/bench_data.json"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        web = write_web_jsonl(Path(folder))
        results = [run_case(*case, batches=args.batches, web=web) for case in CASES]
    print(f"{'case':<26}{'batch':>12}{'tokens':>12}{'seconds':>9}{'tokens/s':>12}")
    for r in results:
        shape = f"{r['global_batch']}x{r['seq_len']}"
        print(f"{r['case']:<26}{shape:>12}{r['tokens']:>12,}{r['seconds']:>9.2f}{r['tokens_per_s']:>12,.0f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps({"machine": platform.node(), "processor": platform.processor(), "results": results}, indent=2)
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

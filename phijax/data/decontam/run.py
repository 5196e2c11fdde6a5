"""`phijax data decontam`: clean training files against benchmarks; write shards, flags and a report.

Output directory:
- `<source>/<file>`: each input file with its contaminated documents removed (other lines byte for
  byte; a `.gz` input is written uncompressed, without the `.gz`);
- `flagged.jsonl`: one line per contaminated or partial document: `doc` (source:index), `where`
  (file:line), `status`, `reason`, `benchmark`, `item_id`, `ngram` or `ratio`;
- `report.json`: counts per benchmark and per source, the settings, index statistics, MB/s.
Work is split into units (line ranges of files) over `--processes` worker processes; units are
reassembled in order, so the output does not depend on the process count. Across hosts, host `i` of
`n` takes files `i::n` and writes `report-host{i}-of-{n}.json` / `flagged-host...jsonl`; `--merge`
then combines them into `report.json` and `flagged.jsonl`.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from phijax.config.loader import relative_note
from phijax.data.decontam.check import Decontaminator, Verdict
from phijax.data.decontam.config import DecontamConfig, DecontamError, decontam_config
from phijax.data.decontam.index import BATCH_CHARS, record_text
from phijax.data.records import BadRecord, DataError, LineIndex, expand_paths, text_record

UNIT_BYTES = 8 << 20  # a unit of work: enough to amortise its start, small enough to balance processes


@dataclass(frozen=True)
class InputFile:
    """One JSONL training file of source `source`; the document is `text_field`."""

    source: str
    path: str
    text_field: str = "text"


@dataclass(frozen=True)
class Unit:
    """Lines `[start, stop)` (non-blank lines, as `LineIndex` counts them) of input file `file`."""

    file: int
    part: int
    start: int
    stop: int


# ------------------------------------------------------------------------------------------ inputs
def input_files(patterns: Sequence[str], text_field: str = "text", source: str = "input") -> list[InputFile]:
    """`--input` globs → files (errors name a pattern that matches nothing)."""
    try:
        return [InputFile(source, str(p), text_field) for p in expand_paths(list(patterns), source)]
    except DataError as err:
        raise DecontamError(str(err).replace("data.sources", "--input")) from None


def files_of_sources(specs: Sequence[Any]) -> list[InputFile]:
    """`data.sources` entries → files. Only `jsonl` sources are files this command can rewrite."""
    files = []
    for spec in specs:
        if spec.source != "jsonl":
            raise DecontamError(
                f"data.sources entry `{spec.name}` is a `{spec.source}` source; `phijax data "
                "decontam` rewrites jsonl files (use data.decontaminate to filter it in training)"
            )
        options = dict(spec.options)
        files += input_files(options.get("paths", ()), options.get("text_field", "text"), spec.name)
    return files


def plan_units(
    files: Sequence[InputFile], host_index: int = 0, host_count: int = 1
) -> tuple[list[int], list[Unit], dict[int, LineIndex]]:
    """This host's files (`host_index::host_count`), their units of about UNIT_BYTES, and their line
    indices (scanned once here; workers inherit them)."""
    mine = list(range(host_index, len(files), host_count))
    units, indices = [], {}
    for f in mine:
        indices[f] = LineIndex([Path(files[f].path)])
        lines = len(indices[f])
        parts = max(1, min(lines, math.ceil(os.path.getsize(files[f].path) / UNIT_BYTES)))
        bounds = [round(lines * k / parts) for k in range(parts + 1)]
        units += [Unit(f, k, bounds[k], bounds[k + 1]) for k in range(parts)]
    return mine, units, indices


# ------------------------------------------------------------------------------------------ workers
_WORKER: dict[str, Any] = {}


def _init_worker(
    decontaminator: Decontaminator, files: Sequence[InputFile], parts_dir: str, lines: dict[int, LineIndex]
) -> None:
    _WORKER.update(decontaminator=decontaminator, files=list(files), parts_dir=parts_dir, lines=lines)


def process_unit(unit: Unit) -> dict[str, Any]:
    """Check one unit; write its kept lines to a part file. Returns counts and flagged entries."""
    file: InputFile = _WORKER["files"][unit.file]
    lines = _WORKER["lines"][unit.file]
    part = Path(_WORKER["parts_dir"]) / f"{unit.file:06d}-{unit.part:06d}"
    flagged, counts, size = [], Counter(), 0
    with open(part, "wb") as out:
        for batch in _batches(lines, unit, file):
            verdicts = _WORKER["decontaminator"].check_batch([text for _, _, _, text in batch])
            kept = []
            for (index, raw, where, _), verdict in zip(batch, verdicts):
                size += len(raw)
                counts[verdict.status] += 1
                if verdict.status != "clean":
                    flagged.append(flag_entry(f"{file.source}:{index}", where, verdict))
                if not verdict.dropped:
                    kept.append(raw if raw.endswith(b"\n") else raw + b"\n")
            out.write(b"".join(kept))
    return {"unit": unit, "bytes": size, "counts": dict(counts), "flagged": flagged}


def _batches(lines: LineIndex, unit: Unit, file: InputFile) -> Iterator[list[tuple[int, bytes, str, str]]]:
    """(line index, raw line, file:line, text) in batches of about BATCH_CHARS characters."""
    batch, size = [], 0
    for index in range(unit.start, unit.stop):
        raw, where = lines.line(index)
        try:
            text = record_text(text_record(json.loads(raw), file.text_field, where))
        except ValueError as err:
            raise DecontamError(f"{where}: not valid JSON ({err}); fix or remove the line") from None
        except BadRecord as err:
            raise DecontamError(f"{err}; set the text field (--text-field or the source's text_field)") from None
        batch.append((index, raw, where, text))
        size += len(text)
        if size >= BATCH_CHARS:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


def flag_entry(doc: str, where: str, verdict: Verdict) -> dict[str, Any]:
    """One line of flagged.jsonl."""
    entry = {
        "doc": doc,
        "where": where,
        "status": verdict.status,
        "reason": verdict.reason,
        "benchmark": verdict.benchmark,
        "item_id": verdict.item_id,
    }
    entry["ngram" if verdict.reason == "13-gram" else "ratio"] = verdict.ngram or verdict.ratio
    return entry


# ------------------------------------------------------------------------------------------- driver
def decontaminate_files(
    decontaminator: Decontaminator,
    files: Sequence[InputFile],
    out_dir: str | Path,
    *,
    processes: int = 1,
    host_index: int = 0,
    host_count: int = 1,
    progress: bool = False,
) -> dict[str, Any]:
    """Clean this host's share of `files` into `out_dir`; returns (and writes) its report."""
    out_dir = Path(out_dir)
    parts_dir = out_dir / f".parts-host{host_index}"
    parts_dir.mkdir(parents=True, exist_ok=True)
    mine, units, lines = plan_units(files, host_index, host_count)
    total = sum(os.path.getsize(files[f].path) for f in mine)
    start, done, results = time.perf_counter(), 0, []
    for result in _results((decontaminator, files, str(parts_dir), lines), units, processes):
        results.append(result)
        done += result["bytes"]
        if progress:
            _progress(done, total, time.perf_counter() - start, results)
    seconds = time.perf_counter() - start
    if progress:
        print(file=sys.stderr)
    _assemble(files, mine, units, parts_dir, out_dir)
    report = _report(decontaminator, files, mine, results, seconds, processes, host_index, host_count)
    ordered = sorted(results, key=lambda r: (r["unit"].file, r["unit"].part))
    _write(out_dir, report, [f for r in ordered for f in r["flagged"]], host_index, host_count)
    return report


def _results(worker_args: tuple, units: list[Unit], processes: int) -> Iterator[dict[str, Any]]:
    """Results of `process_unit` over `units`, in completion order; `worker_args` for `_init_worker`."""
    if processes <= 1 or len(units) <= 1:
        _init_worker(*worker_args)
        yield from map(process_unit, units)
        return
    # fork shares the index copy-on-write; with threads running (jax, grain) fork is unsafe: spawn.
    context = multiprocessing.get_context("fork" if threading.active_count() == 1 else "spawn")
    with context.Pool(processes, _init_worker, worker_args) as pool:
        yield from pool.imap_unordered(process_unit, units)


def _progress(done: int, total: int, seconds: float, results: list[dict[str, Any]]) -> None:
    docs = sum(sum(r["counts"].values()) for r in results)
    flagged = sum(len(r["flagged"]) for r in results)
    rate = done / 1e6 / seconds if seconds > 0 else 0.0
    width = 30
    filled = int(width * done / total) if total else width
    print(
        f"\rdecontam [{'#' * filled}{'.' * (width - filled)}] {done / 1e6:,.1f}/{total / 1e6:,.1f} MB "
        f"{rate:,.1f} MB/s  docs {docs:,}  flagged {flagged:,}",
        end="",
        file=sys.stderr,
        flush=True,
    )


def _assemble(files: Sequence[InputFile], mine: list[int], units: list[Unit], parts_dir: Path, out_dir: Path) -> None:
    """Concatenate each file's parts, in order, into `out_dir/<source>/<name>`."""
    for f in mine:
        name = Path(files[f].path).name.removesuffix(".gz")
        target = out_dir / files[f].source / name
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target, "wb") as out:
            for unit in (u for u in units if u.file == f):
                part = parts_dir / f"{unit.file:06d}-{unit.part:06d}"
                out.write(part.read_bytes())
                part.unlink()
    parts_dir.rmdir()


# ------------------------------------------------------------------------------------------ reports
def _report(
    decontaminator: Decontaminator,
    files: Sequence[InputFile],
    mine: list[int],
    results: list[dict],
    seconds: float,
    processes: int,
    host_index: int,
    host_count: int,
) -> dict[str, Any]:
    """Counts per source and per benchmark, the settings and the speed, as one JSON object."""
    sources: dict[str, Counter] = {}
    for f in mine:
        sources.setdefault(files[f].source, Counter())
    benchmarks: dict[str, Counter] = {spec.name: Counter() for spec in decontaminator.config.benchmarks}
    size = 0
    for result in results:
        counts = sources[files[result["unit"].file].source]
        counts.update(result["counts"])
        counts["documents"] += sum(result["counts"].values())
        counts["bytes"] += result["bytes"]
        size += result["bytes"]
        for entry in result["flagged"]:
            benchmarks.setdefault(entry["benchmark"], Counter())[f"{entry['status']} ({entry['reason']})"] += 1
    return {
        "settings": decontaminator.config.settings(),
        "index": decontaminator.index.stats,
        "sources": {name: _source_counts(c) for name, c in sources.items()},
        "benchmarks": {name: dict(c) for name, c in benchmarks.items()},
        "files": len(mine),
        "inputs": [f.path for f in files],
        "bytes": size,
        "seconds": round(seconds, 3),
        "mb_per_s": round(size / 1e6 / seconds, 3) if seconds > 0 else None,
        "processes": processes,
        "host_index": host_index,
        "host_count": host_count,
    }


def _source_counts(counts: Counter) -> dict[str, int]:
    keys = ("documents", "clean", "partial", "contaminated", "bytes")
    return {key: int(counts.get(key, 0)) for key in keys} | {"kept": int(counts["documents"] - counts["contaminated"])}


def _write(
    out_dir: Path, report: dict[str, Any], flagged: list[dict[str, Any]], host_index: int, host_count: int
) -> None:
    suffix = "" if host_count == 1 else f"-host{host_index}-of-{host_count}"
    (out_dir / f"report{suffix}.json").write_text(json.dumps(report, indent=2) + "\n")
    with open(out_dir / f"flagged{suffix}.jsonl", "w") as out:
        out.writelines(json.dumps(entry) + "\n" for entry in flagged)


def merge_reports(out_dir: str | Path) -> dict[str, Any]:
    """Combine the per-host reports and flags in `out_dir` into `report.json` and `flagged.jsonl`."""
    out_dir = Path(out_dir)
    paths = sorted(out_dir.glob("report-host*-of-*.json"))
    if not paths:
        raise DecontamError(f"no report-host*-of-*.json in {out_dir}; run each host with --host-index/--host-count")
    reports = [json.loads(p.read_text()) for p in paths]
    count = reports[0]["host_count"]
    if sorted(r["host_index"] for r in reports) != list(range(count)):
        raise DecontamError(
            f"{out_dir} holds reports of hosts {sorted(r['host_index'] for r in reports)} of {count}; "
            "wait for every host to finish, then merge"
        )
    merged = dict(reports[0], host_index=None, seconds=max(r["seconds"] for r in reports))
    merged["bytes"] = sum(r["bytes"] for r in reports)
    merged["files"] = sum(r["files"] for r in reports)
    merged["mb_per_s"] = round(merged["bytes"] / 1e6 / merged["seconds"], 3) if merged["seconds"] else None
    merged["sources"] = _sum_nested([r["sources"] for r in reports])
    merged["benchmarks"] = _sum_nested([r["benchmarks"] for r in reports])
    (out_dir / "report.json").write_text(json.dumps(merged, indent=2) + "\n")
    order = {path: i for i, path in enumerate(merged["inputs"])}
    flagged = [
        json.loads(line)
        for r in reports
        for line in (out_dir / f"flagged-host{r['host_index']}-of-{count}.jsonl").read_text().splitlines()
    ]
    flagged.sort(key=lambda e: (order[e["where"].rpartition(":")[0]], int(e["where"].rpartition(":")[2])))
    with open(out_dir / "flagged.jsonl", "w") as out:
        out.writelines(json.dumps(entry) + "\n" for entry in flagged)
    return merged


def _sum_nested(tables: list[dict[str, dict[str, int]]]) -> dict[str, dict[str, int]]:
    out: dict[str, Counter] = {}
    for table in tables:
        for name, counts in table.items():
            out.setdefault(name, Counter()).update(counts)
    return {name: dict(c) for name, c in out.items()}


def format_report(report: dict[str, Any]) -> str:
    """The report as tables for people (report.json is the one for programs)."""
    s = report["settings"]
    lines = [
        f"{report['bytes'] / 1e6:,.1f} MB in {report['seconds']:.1f} s ({report['mb_per_s'] or 0:,.1f} MB/s, "
        f"{report['processes']} processes); {s['ngram']}-gram set, {s['short_ngram']}-gram ratio: "
        f"contaminated > {s['contaminated_ratio']}, partial > {s['info_ratio']}",
        f"{'source':<20}{'documents':>12}{'kept':>12}{'contaminated':>14}{'partial':>10}",
    ]
    for name, c in report["sources"].items():
        lines.append(f"{name:<20}{c['documents']:>12,}{c['kept']:>12,}{c['contaminated']:>14,}{c['partial']:>10,}")
    lines.append(f"{'benchmark':<20}{'13-gram':>12}{'7-gram':>12}{'partial':>14}")
    for name, c in report["benchmarks"].items():
        lines.append(
            f"{name:<20}{c.get('contaminated (13-gram)', 0):>12,}{c.get('contaminated (7-gram)', 0):>12,}"
            f"{c.get('partial (7-gram)', 0):>14,}"
        )
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- CLI
def run_command(args: argparse.Namespace) -> int:
    """Body of `phijax data decontam` (arguments: `phijax.data.decontam.cli`); bad input raises DecontamError."""
    if not args.out:
        raise DecontamError("phijax data decontam needs --out DIR for the cleaned shards and reports")
    if args.merge:
        report = merge_reports(args.out)
    else:
        if not 0 <= args.host_index < args.host_count:
            raise DecontamError(f"--host-index {args.host_index} must be in 0..{args.host_count - 1}")
        config, files = _settings_and_inputs(args)
        decontaminator = Decontaminator(config)
        report = decontaminate_files(
            decontaminator,
            files,
            args.out,
            processes=max(1, args.processes),
            host_index=args.host_index,
            host_count=args.host_count,
            progress=not args.json,
        )
    print(json.dumps(report) if args.json else format_report(report))
    return 0


def _settings_and_inputs(args: argparse.Namespace) -> tuple[DecontamConfig, list[InputFile]]:
    config, files = DecontamConfig(), []
    if args.config:
        from phijax.train.config import load_train_job

        cfg = load_train_job(args.config, args.overrides)
        files = files_of_sources(cfg.data.sources) if not args.input else []
        config = getattr(cfg.data, "decontaminate", None) or config
    if args.settings:
        import yaml

        path = Path(args.settings)
        if not path.is_file():
            raise DecontamError(
                f"--settings {args.settings!r} does not exist{relative_note(args.settings)}; fix the path"
            )
        config = decontam_config(yaml.safe_load(path.read_text()) or {})
    if args.benchmark:
        config = replace(config, benchmarks=config.benchmarks + tuple(map(parse_benchmark_arg, args.benchmark)))
    if getattr(args, "eval_config", None):
        config = replace(config, benchmarks=config.benchmarks + eval_config_benchmarks(args.eval_config))
    files += input_files(args.input, args.text_field) if args.input else []
    if not files:
        raise DecontamError("no training input: pass --input GLOB or --config with data.sources")
    return config, files


def eval_config_benchmarks(files: Sequence[str]) -> tuple[Any, ...]:
    """One evaluator benchmark per `evaluators` entry of a `phijax eval` config (named by its label).

    The job's own `limit` is not applied: decontamination indexes every item the evaluators read.
    """
    from phijax.config.loader import load_job
    from phijax.data.decontam.config import BenchmarkSpec
    from phijax.eval.config import EvalJob

    for path in files:
        if not Path(path).is_file():
            raise DecontamError(
                f"--eval-config {path!r} does not exist{relative_note(path)}; fix the path"
                " (e.g. configs/tiny/eval.yaml)"
            )
    job = load_job(EvalJob, files)
    return tuple(BenchmarkSpec(spec.key, evaluator=spec.name, options=dict(spec.options)) for spec in job.evaluators)


def parse_benchmark_arg(text: str) -> Any:
    """`NAME=GLOB[,GLOB][:FIELD,FIELD]` → a BenchmarkSpec."""
    from phijax.data.decontam.config import BenchmarkSpec

    name, eq, rest = text.partition("=")
    if not eq or not name or not rest:
        raise DecontamError(f"--benchmark {text!r}: expected NAME=GLOB[,GLOB][:FIELD,FIELD], e.g. gsm8k=gsm8k.jsonl")
    paths, _, fields = rest.partition(":")
    return BenchmarkSpec(name, tuple(p for p in paths.split(",") if p), tuple(f for f in fields.split(",") if f))

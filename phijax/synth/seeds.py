"""Reading seed records for a stage: JSONL files, globs or directories, each record with a stable id."""

from __future__ import annotations

import glob
import json
from pathlib import Path
from typing import Any

from phijax.synth import SynthError


def input_files(spec: str) -> list[Path]:
    """The JSONL files `spec` names: a file, a glob, or a directory (its `*.jsonl`, sorted)."""
    path = Path(spec)
    if path.is_dir():
        files = sorted(path.glob("*.jsonl"))
    elif any(c in spec for c in "*?["):
        files = sorted(Path(p) for p in glob.glob(spec, recursive=True))
    else:
        files = [path] if path.is_file() else []
    if not files and not (path / "_synth").is_dir():  # an earlier stage that kept nothing is an empty input
        raise SynthError(f"seed input {spec!r} matches no JSONL file; check the stage's `input` path")
    return files


def read_seeds(spec: str, limit: int | None = None) -> list[tuple[str, dict[str, Any]]]:
    """(seed_id, record) for every record: its `id` field, else `FILE:LINE`; a bad line is one error line."""
    seeds: list[tuple[str, dict[str, Any]]] = []
    for path in input_files(spec):
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as err:
            raise SynthError(f"{path}: cannot read seed file ({type(err).__name__}); fix or remove it") from None
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError as err:
                raise SynthError(f"{path}:{number}: seed record is not valid JSON ({err.msg}); fix that line") from None
            if not isinstance(record, dict):
                raise SynthError(f"{path}:{number}: seed record must be a JSON object; fix that line")
            seeds.append((str(record.get("id") or f"{path.name}:{number}"), record))
            if limit is not None and len(seeds) >= limit:
                return seeds
    return seeds

"""A stage's output: JSONL shards written a seed at a time, and the recovery that makes resume exact.

Every record a seed produced is written in one `os.write` (all its lines at once) and carries
`provenance.seed_id`, `provenance.index` and `provenance.of` (how many records that seed made). After a
kill, `recover` rewrites each shard keeping only whole lines of seeds whose records are all present, and
returns those seeds as done; a seed with a torn or partial group is dropped and runs again. Seeds that
made no record (all rejected) are listed in `_synth/done.jsonl`. Together: every record exactly once.
"""

from __future__ import annotations

import json
import os
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

STATE = "_synth"


def shard_paths(output: Path) -> list[Path]:
    """The shards of a stage, oldest first."""
    return sorted(output.glob("part-*.jsonl"))


def recover(output: Path) -> dict[str, int]:
    """Repair the shards after a kill; return {seed_id: records} of every seed whose records are all present."""
    done: dict[str, int] = {}
    for path in shard_paths(output):
        groups: dict[str, list[tuple[int, bytes]]] = defaultdict(list)
        expected: dict[str, int] = {}
        bad = False
        for line in path.read_bytes().splitlines(keepends=True):
            record = _parse(line)
            if record is None:
                bad = True
                continue
            prov = record["provenance"]
            groups[prov["seed_id"]].append((prov["index"], line))
            expected[prov["seed_id"]] = prov["of"]
        whole = {s: g for s, g in groups.items() if sorted(i for i, _ in g) == list(range(expected[s]))}
        if bad or len(whole) != len(groups):
            keep = b"".join(line for g in whole.values() for _, line in sorted(g))
            tmp = path.with_suffix(".tmp")
            tmp.write_bytes(keep)
            os.replace(tmp, path)
        for seed_id, group in whole.items():
            done[seed_id] = len(group)
    for entry in _read_ledger(output):
        done.setdefault(entry["seed"], 0)
    return done


def _parse(line: bytes) -> dict[str, Any] | None:
    if not line.endswith(b"\n"):
        return None
    try:
        record = json.loads(line)
        prov = record["provenance"]
        int(prov["index"]), int(prov["of"]), str(prov["seed_id"])
        return record
    except (ValueError, TypeError, KeyError):
        return None


def _read_ledger(output: Path) -> list[dict[str, Any]]:
    path = output / STATE / "done.jsonl"
    if not path.is_file():
        return []
    entries = []
    for line in path.read_bytes().splitlines(keepends=True):
        try:
            entries.append(json.loads(line)) if line.endswith(b"\n") else None
        except ValueError:
            continue
    return entries


class ShardWriter:
    """Appends seed groups to this run's shards (a new file per run and per `shard_records` records)."""

    def __init__(self, output: Path, shard_records: int):
        self.output, self.shard_records = output, shard_records
        (output / STATE).mkdir(parents=True, exist_ok=True)
        self._stamp = time.strftime("%Y%m%d-%H%M%S") + f"-{os.getpid()}"
        self._part, self._count, self._fd = 0, 0, None
        self._ledger = os.open(output / STATE / "done.jsonl", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def write_seed(self, seed_id: str, records: list[dict[str, Any]], rejected: dict[str, int]) -> None:
        """All records of one seed in one write, then the ledger line (a seed with no records is done by it)."""
        if records:
            if self._fd is None or self._count >= self.shard_records:
                self._open_next()
            data = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode()
            os.write(self._fd, data)
            self._count += len(records)
        entry = {"seed": seed_id, "records": len(records), "rejected": rejected}
        os.write(self._ledger, (json.dumps(entry) + "\n").encode())

    def _open_next(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
        path = self.output / f"part-{self._stamp}-{self._part:04d}.jsonl"
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self._part, self._count = self._part + 1, 0

    def close(self) -> None:
        """Close the shard and the ledger."""
        for fd in (self._fd, self._ledger):
            if fd is not None:
                os.close(fd)
        self._fd = self._ledger = None

"""Reading record files: path globs, line indexes, JSONL records, and the errors that name `file:line`.

The one place for these (training sources, DPO pairs, benchmarks, problem sets, decontamination all read
through it). Light on purpose (no grain, no jax): a bad file must stop a run with one line naming where
and what to fix, before anything heavy starts. `DataError` is bad data the user must fix; `BadRecord` is
one malformed record that a training pipeline may skip and count.
"""

from __future__ import annotations

import array
import bisect
import glob
import gzip
import io
import json
import os
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from phijax.config.loader import relative_note
from phijax.errors import PhijaxError


class DataError(PhijaxError):
    """Data that cannot be used: a missing path, an empty glob, a bad record under `data.strict`."""


class BadRecord(Exception):
    """A malformed record: `where` is `file:line` (or `source[index]`), `reason` says what is wrong."""

    def __init__(self, where: str, reason: str):
        super().__init__(f"{where}: {reason}")
        self.where = where
        self.reason = reason


# --------------------------------------------------------------------------------------- paths
def expand_paths(
    patterns: str | Sequence[str], source: str, *, setting: str = "data.sources", hint: str = ""
) -> list[Path]:
    """Files matched by `patterns` (globs, `**` allowed, relative to the working directory), sorted per
    pattern, for `source` (named in errors) configured by `setting`.

    Raises `DataError` at start-up for a pattern that matches no file, so a typo never surfaces
    mid-run as an exhausted source. `hint` ends that message (e.g. how to make the missing file).
    """
    if isinstance(patterns, (str, Path)):
        patterns = [str(patterns)]
    if not patterns:
        raise DataError(f"`{source}` has no paths: add `paths: [data/*.jsonl]` to its entry in {setting}")
    files: list[Path] = []
    for pattern in patterns:
        matched = sorted(glob.glob(os.path.expanduser(str(pattern)), recursive=True))
        matched = [m for m in matched if Path(m).is_file()]
        if not matched:
            raise DataError(f"no file matches {pattern!r}{relative_note(pattern)}; fix the path in {setting}{hint}")
        files += [Path(m) for m in matched]
    return files


# ------------------------------------------------------------------------------------- records
def text_record(obj: Any, text_field: str, where: str) -> dict[str, Any]:
    """`{"text": ...}` or `{"messages": [...]}` from a parsed row; `BadRecord` if it has neither.

    `text_field` names the field holding the document; a list-valued field is read as chat messages.
    """
    if not isinstance(obj, dict):
        raise BadRecord(where, f"expected an object, got {type(obj).__name__}")
    if text_field not in obj:
        raise BadRecord(where, f"missing field `{text_field}`")
    value = obj[text_field]
    if isinstance(value, str):
        return {"text": value}
    if isinstance(value, list):
        return {"messages": check_messages(value, where)}
    raise BadRecord(where, f"field `{text_field}` must be a string or a list of messages, got {type(value).__name__}")


def check_messages(messages: Any, where: str) -> list[dict[str, str]]:
    """Validate chat messages: a list of `{role: str, content: str}`."""
    if not isinstance(messages, list) or not messages:
        raise BadRecord(where, "`messages` must be a non-empty list")
    for message in messages:
        if not (
            isinstance(message, dict)
            and isinstance(message.get("role"), str)
            and isinstance(message.get("content"), str)
        ):
            raise BadRecord(where, f"bad chat message {message!r}: need string `role` and `content`")
    return messages


class LineIndex:
    """Random access to the non-blank lines of text files, by byte offsets found in one scan.

    Memory is 16 bytes a line (offset and line number). `.gz` files are decompressed into memory once
    (gzip has no random access); other files are read with one open handle each.
    """

    def __init__(self, files: Sequence[Path]):
        self.files = list(files)
        self._offsets: list[array.array] = []
        self._numbers: list[array.array] = []
        self._firsts = [0]  # index of each file's first line, over all files
        self._blobs: dict[int, bytes] = {}
        self._handles: dict[int, Any] = {}
        for f, path in enumerate(self.files):
            self._index_file(f, path)
            self._firsts.append(self._firsts[-1] + len(self._offsets[f]))

    def _index_file(self, f: int, path: Path) -> None:
        offsets, numbers = array.array("q"), array.array("q")
        if path.suffix == ".gz":
            import gzip

            self._blobs[f] = gzip.decompress(path.read_bytes())
            lines: Any = io.BytesIO(self._blobs[f])
        else:
            lines = open(path, "rb")
        with lines:
            offset = 0
            for number, line in enumerate(lines, 1):
                if line.strip():
                    offsets.append(offset)
                    numbers.append(number)
                offset += len(line)
        self._offsets.append(offsets)
        self._numbers.append(numbers)

    def __len__(self) -> int:
        return self._firsts[-1]

    def line(self, index: int) -> tuple[bytes, str]:
        """Line `index` (non-blank lines only, counted over all files) and its `file:line`."""
        f = bisect.bisect_right(self._firsts, index) - 1
        offset, number = self._offsets[f][index - self._firsts[f]], self._numbers[f][index - self._firsts[f]]
        where = f"{self.files[f]}:{number}"
        if f in self._blobs:
            blob = self._blobs[f]
            end = blob.find(b"\n", offset)
            return blob[offset : None if end < 0 else end], where
        handle = self._handles.get(f) or self._handles.setdefault(f, open(self.files[f], "rb"))
        handle.seek(offset)
        return handle.readline(), where


# --------------------------------------------------------------------------------- grain datasets


def read_jsonl(path: str | Path, *, what: str = "record file") -> Iterator[tuple[int, dict[str, Any]]]:
    """`(line_no, record)` for each non-blank line of the JSONL file `path` (line numbers from 1).

    A path ending in `.gz` is decompressed as it is read (line numbers count decompressed lines).
    what: how the file is named in errors (e.g. "benchmark file"). Raises `DataError` with one
    line: `path not found`, `path: not a gzip file`, or `path:line: not valid JSON (...)` / `... must
    be a JSON object`.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(
            f"{what} {path} not found{relative_note(path)}: check the path (JSONL, one JSON object per line)"
        )
    gzipped = path.suffix == ".gz"
    with gzip.open(path, "rb") if gzipped else path.open("rb") as handle:
        try:
            for line_no, raw in enumerate(handle, 1):
                if raw.strip():
                    yield line_no, _parse(raw, f"{path}:{line_no}", what)
        except (gzip.BadGzipFile, EOFError, zlib.error) as err:
            raise DataError(
                f"{path}: not a readable gzip file ({err or 'truncated'}); re-compress the {what} or drop the .gz"
            ) from None


def _parse(raw: bytes, where: str, what: str) -> dict[str, Any]:
    try:
        record = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise DataError(f"{where}: not UTF-8 text; re-encode the {what} as UTF-8") from None
    except ValueError as err:
        msg = getattr(err, "msg", str(err))
        raise DataError(f"{where}: not valid JSON ({msg}); fix or remove the line") from None
    if not isinstance(record, dict):
        raise DataError(f"{where}: a line of a {what} must be a JSON object, got {type(record).__name__}")
    return record

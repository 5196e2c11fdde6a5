"""Built-in data sources: `jsonl`, `parquet`, `array_record` and the embedded `curriculum`.

Each is registered by the `phijax_register_data_sources` hook under its name; a config selects one with
`source: NAME` and passes the other keys of its entry as options:

    data:
      sources:
        - {name: web, source: jsonl, paths: [data/web/*.jsonl.gz], text_field: text, weight: 0.6}
        - {name: chat, source: parquet, paths: [data/sft/*.parquet], text_field: messages}
        - {name: math, source: curriculum, weight: 0.4}

All are random-access (exact resume, global shuffle). Files are scanned when the factory is called,
so a missing path or an empty glob fails at start-up; malformed rows raise `BadRecord` with their
`file:line` (jsonl), `file:row` (parquet) or `file:record` (array_record) when read.
"""

from __future__ import annotations

import bisect
import json
from collections.abc import Sequence
from typing import Any

from phijax.plugins import hookimpl


@hookimpl
def phijax_register_data_sources(register) -> None:
    register("jsonl", JsonlSource)
    register("parquet", ParquetSource)
    register("array_record", ArrayRecordSource)
    register("curriculum", CurriculumSource)


class JsonlSource:
    """One JSON object per line in `.jsonl` / `.jsonl.gz` files; the document is `text_field`.

    Options: `paths` (globs), `text_field` (default `text`; a list-valued field such as `messages`
    is read as chat).
    """

    def __init__(self, paths: Sequence[str] | str, text_field: str = "text"):
        from phijax.data.records import LineIndex, expand_paths

        files = expand_paths(paths, "jsonl")
        for path in files:
            if path.suffix == ".zst":
                from phijax.data.records import DataError

                raise DataError(f"{path}: .zst is not supported; recompress with gzip (.jsonl.gz)")
        self.text_field = text_field
        self._lines = LineIndex(files)

    def __len__(self) -> int:
        return len(self._lines)

    def __getitem__(self, index: int) -> dict[str, Any]:
        line, where = self._lines.line(index)
        return _json_record(line, self.text_field, where)


class ParquetSource:
    """Rows of Parquet files (pyarrow), read one row group at a time; the document is `text_field`.

    Options: `paths` (globs), `text_field` (default `text`; a list column such as `messages` is chat).
    """

    def __init__(self, paths: Sequence[str] | str, text_field: str = "text"):
        import pyarrow.parquet as pq

        from phijax.data.records import DataError, expand_paths

        self.text_field = text_field
        self._files = expand_paths(paths, "parquet")
        self._groups: list[tuple[int, int, int, int]] = []  # (file, group, first row, first in file)
        total = 0
        for f, path in enumerate(self._files):
            parquet = pq.ParquetFile(path)
            meta, columns = parquet.metadata, parquet.schema_arrow.names
            if text_field not in columns:
                raise DataError(
                    f"{path} has no column `{text_field}` (columns: "
                    f"{', '.join(columns)}); set text_field in data.sources"
                )
            in_file = 0
            for g in range(meta.num_row_groups):
                self._groups.append((f, g, total, in_file))
                total += meta.row_group(g).num_rows
                in_file += meta.row_group(g).num_rows
        self._firsts = [first for _, _, first, _ in self._groups]
        self._length = total
        self._cached: tuple[int, list[Any]] | None = None

    def __len__(self) -> int:
        return self._length

    def __getitem__(self, index: int) -> dict[str, Any]:
        from phijax.data.records import text_record

        g = bisect.bisect_right(self._firsts, index) - 1
        f, _, first, first_in_file = self._groups[g]
        where = f"{self._files[f]}:row {first_in_file + index - first}"
        value = self._row_group(g)[index - first]
        return text_record({self.text_field: value}, self.text_field, where)

    def _row_group(self, g: int) -> list[Any]:
        if self._cached is None or self._cached[0] != g:
            import pyarrow.parquet as pq

            f, group, _, _ = self._groups[g]
            table = pq.ParquetFile(self._files[f]).read_row_group(group, columns=[self.text_field])
            self._cached = (g, table.column(self.text_field).to_pylist())
        return self._cached[1]


class ArrayRecordSource:
    """Records of ArrayRecord files (grain's native format), each a UTF-8 JSON object or plain text.

    Options: `paths` (globs), `text_field` (default `text`; used when a record is a JSON object).
    """

    def __init__(self, paths: Sequence[str] | str, text_field: str = "text"):
        import grain

        from phijax.data.records import expand_paths

        self.text_field = text_field
        self._files = expand_paths(paths, "array_record")
        self._readers = [grain.sources.ArrayRecordDataSource(str(p)) for p in self._files]
        self._firsts = [0]
        for reader in self._readers:
            self._firsts.append(self._firsts[-1] + len(reader))

    def __len__(self) -> int:
        return self._firsts[-1]

    def __getitem__(self, index: int) -> dict[str, Any]:
        from phijax.data.records import BadRecord

        f = bisect.bisect_right(self._firsts, index) - 1
        local = index - self._firsts[f]
        raw, where = self._readers[f][local], f"{self._files[f]}:record {local}"
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise BadRecord(where, "record is not UTF-8 text") from None
        if not text.lstrip().startswith("{"):
            return {"text": text}
        return _json_record(text, self.text_field, where)


def _json_record(text: str | bytes, text_field: str, where: str) -> dict[str, Any]:
    """One JSON object → a record with its document in `text_field`; BadRecord names `where`."""
    from phijax.data.records import BadRecord, text_record

    try:
        obj = json.loads(text)
    except UnicodeDecodeError:  # a ValueError without `.msg`: bytes that are not UTF-8
        raise BadRecord(where, "line is not UTF-8 text") from None
    except ValueError as err:
        raise BadRecord(where, f"not valid JSON ({err.msg})") from None
    return text_record(obj, text_field, where)


class CurriculumSource:
    """The embedded synthetic curriculum (`phijax.data.curriculum`): unlimited worked arithmetic.

    Options: `seed` (which curriculum), `size` (records per epoch), `format` (`text`: textbook
    passages; `chat`: user question, assistant worked solution), `kinds` (subset of problem kinds).
    """

    def __init__(
        self, seed: int = 0, size: int = 1_000_000_000, format: str = "text", kinds: Sequence[str] | None = None
    ):
        from phijax.data import curriculum
        from phijax.data.records import DataError

        if format not in ("text", "chat"):
            raise DataError(f"curriculum format must be `text` or `chat`, got {format!r}")
        unknown = set(kinds or ()) - set(curriculum.KINDS)
        if unknown:
            raise DataError(f"unknown curriculum kinds {sorted(unknown)}: choose from {curriculum.KINDS}")
        self.seed, self.size, self.format = seed, size, format
        self.kinds = tuple(kinds) if kinds else curriculum.KINDS

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> dict[str, Any]:
        from phijax.data.curriculum import make_problem

        problem = make_problem(self.seed, index, self.kinds)
        if self.format == "chat":
            return {"messages": problem.messages, "answer": problem.answer}
        return {"text": problem.text, "answer": problem.answer}

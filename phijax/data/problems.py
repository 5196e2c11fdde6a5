"""Problem sets: `{id, query, answer}` or `{id, query, tests}` records that PTS searches and evaluators judge.

Two sources: a JSONL file (`read_problems`, read through `phijax.data.records.read_jsonl`, so a bad line
stops the run with the same one-line `file:line` error as every other JSONL) and the embedded arithmetic
curriculum (`curriculum_problems`: the same draw wherever it is made, so PTS and the `curriculum`
evaluator can pick problems the other did not see by seed alone). Light: no jax.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from phijax.config.loader import relative_note
from phijax.data.config import CurriculumProblemsConfig
from phijax.data.records import read_jsonl
from phijax.errors import ConfigError
from phijax.verify import ProblemError

TEXT_PROMPT = "Exercise. {query}\n\nSolution."  # the curriculum's textbook form (phijax.data.curriculum.Problem.text)
MAX_SCAN = 10_000  # curriculum indices scanned per problem kept before max_digits counts as too strict


def read_problems(path: str | Path, fields: Sequence[str] = ("answer", "tests")) -> list[dict[str, Any]]:
    """Problems of a JSONL file (`.gz` too): one object a line with a non-empty `query` string and one of
    `fields` (what the verifier checks: by default `answer` or `tests`); `id` defaults to the line number.

    One-line errors: `ConfigError` for a missing file, `DataError` naming `file:line` for a line that is
    not a JSON object, `ProblemError` naming `file:line` and the field for a record without what a
    problem needs, and for a file without problems.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(
            f"problems file {path} not found{relative_note(path)}: write a JSONL of {{query, answer}} records "
            "or set problems=null to use the curriculum"
        )
    problems = [
        _problem(record, f"{path}:{line_no}", fields) for line_no, record in read_jsonl(path, what="problems file")
    ]
    if not problems:
        raise ProblemError(f"{path} holds no problems: write one JSON object per line")
    return problems


def _problem(record: dict[str, Any], where: str, fields: Sequence[str]) -> dict[str, Any]:
    """`record` (a parsed line, at `where` = `file:line`) as a problem: checked, with an `id`."""
    if not isinstance(record.get("query"), str) or not record["query"]:
        raise ProblemError(f"{where}: a problem needs a non-empty `query` string")
    if not any(f in record for f in fields):
        names = " nor ".join(f"`{f}`" for f in fields)
        raise ProblemError(
            f"{where}: problem has {'neither ' if len(fields) > 1 else 'no '}{names}; add what the verifier checks"
        )
    return {"id": record.get("id", where.rpartition(":")[2]), **record}


def curriculum_issue(count: int, kinds: Sequence[str], max_digits: int | None, prefix: str = "") -> str | None:
    """What is wrong with these curriculum settings, as one line naming the key (`prefix` + key, e.g.
    `curriculum.count`), or None. Shared by PTS's problems and the curriculum evaluator."""
    from phijax.data.curriculum import KINDS

    if count < 1:
        return f"{prefix}count ({count}) must be at least 1"
    unknown = sorted(set(kinds) - set(KINDS)) or ([] if kinds else ["(none)"])
    if unknown:
        return f"{prefix}kinds: unknown kind {unknown[0]}; choose from {', '.join(KINDS)}"
    if max_digits is not None and max_digits < 2:
        return f"{prefix}max_digits ({max_digits}) must be at least 2 (the curriculum's smallest problems)"
    return None


def curriculum_problems(cur: CurriculumProblemsConfig) -> list[dict[str, Any]]:
    """`cur.count` curriculum problems as `{id, query, answer, kind}` records.

    Problem i of curriculum `cur.seed` for i = 0, 1, ..., keeping those of `cur.kinds` whose operands
    have at most `cur.max_digits` digits (None: any), until `cur.count` are kept.
    """
    from phijax.data.curriculum import make_problem

    limit = None if cur.max_digits is None else 10**cur.max_digits
    problems: list[dict[str, Any]] = []
    index = 0
    while len(problems) < cur.count:
        if index >= MAX_SCAN * cur.count:
            raise ConfigError(
                f"curriculum: only {len(problems)} of {cur.count} problems have operands of at most "
                f"{cur.max_digits} digits; raise curriculum.max_digits or lower count"
            )
        drawn = make_problem(cur.seed, index, tuple(cur.kinds))
        if limit is None or max(drawn.a, drawn.b) < limit:
            problems.append(
                {
                    "id": f"curriculum-{cur.seed}-{index}",
                    "query": drawn.question,
                    "answer": drawn.answer,
                    "kind": drawn.kind,
                }
            )
        index += 1
    return problems

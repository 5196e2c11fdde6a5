"""Problem sets (`phijax.data.problems`): JSONL problem files read through the shared record reader, with
one-line `file:line` errors, and the curriculum's draw of problems."""

from __future__ import annotations

import gzip
import json

import pytest

from phijax.config import load_job
from phijax.data.config import CurriculumProblemsConfig
from phijax.data.problems import curriculum_problems, read_problems
from phijax.data.records import DataError
from phijax.errors import ConfigError, PhijaxError
from phijax.pts.config import PTSJob
from phijax.verify import ProblemError

GOOD = {"query": "Compute 1 + 1.", "answer": "2"}


def write(tmp_path, *lines: str, name: str = "problems.jsonl"):
    path = tmp_path / name
    path.write_text("".join(line + "\n" for line in lines))
    return path


def one_line_error(error: type, path) -> str:
    with pytest.raises(error) as caught:
        read_problems(path)
    assert isinstance(caught.value, PhijaxError) and "\n" not in str(caught.value)
    return str(caught.value)


# ------------------------------------------------------------------------------------------ files
def test_problems_keep_their_fields_and_get_the_line_number_as_default_id(tmp_path):
    path = write(tmp_path, json.dumps(GOOD), "", json.dumps({"id": "t1", "query": "Add.", "tests": "assert 1"}))
    assert read_problems(path) == [{"id": "1", **GOOD}, {"id": "t1", "query": "Add.", "tests": "assert 1"}]


def test_a_gzipped_problems_file_is_read_like_a_plain_one(tmp_path):
    path = tmp_path / "problems.jsonl.gz"
    path.write_bytes(gzip.compress((json.dumps(GOOD) + "\n").encode()))
    assert read_problems(path) == [{"id": "1", **GOOD}]


@pytest.mark.parametrize(
    "line, words",
    [
        ("not json", "problems.jsonl:2: not valid JSON"),
        ('{"query": "Compute 1 + 1.", "answer": ', "problems.jsonl:2: not valid JSON"),
        ('["Compute 1 + 1.", "2"]', "problems.jsonl:2: a line of a problems file must be a JSON object, got list"),
    ],
)
def test_a_bad_line_is_one_line_naming_file_and_line(tmp_path, line, words):
    path = write(tmp_path, json.dumps(GOOD), line)
    assert words in one_line_error(DataError, path)


@pytest.mark.parametrize(
    "record, words",
    [
        ({"answer": "2"}, "problems.jsonl:2: a problem needs a non-empty `query` string"),
        ({"query": "", "answer": "2"}, "problems.jsonl:2: a problem needs a non-empty `query` string"),
        ({"question": "Compute 1 + 1.", "answer": "2"}, "problems.jsonl:2: a problem needs a non-empty `query`"),
        ({"query": "Compute 1 + 1."}, "problems.jsonl:2: problem has neither `answer` nor `tests`"),
    ],
)
def test_a_problem_without_query_or_answer_is_one_line_naming_the_field(tmp_path, record, words):
    path = write(tmp_path, json.dumps(GOOD), json.dumps(record))
    assert words in one_line_error(ProblemError, path)


def test_a_missing_or_empty_problems_file_is_one_line_with_the_fix(tmp_path):
    message = one_line_error(ConfigError, tmp_path / "missing.jsonl")
    assert "missing.jsonl not found" in message and "problems=null" in message
    message = one_line_error(ProblemError, write(tmp_path, "", "  "))
    assert "holds no problems" in message


# ------------------------------------------------------------------------------------- curriculum
def test_curriculum_problems_respect_kinds_and_digits():
    cfg = load_job(
        PTSJob, [], ["curriculum.count=20", "curriculum.max_digits=2", "curriculum.kinds=[addition]"]
    ).curriculum
    problems = curriculum_problems(cfg)
    assert len(problems) == 20 and {p["kind"] for p in problems} == {"addition"}
    for p in problems:
        a, b = (int(x) for x in p["query"][len("Compute ") : -1].split(" + "))
        assert a < 100 and b < 100 and p["answer"] == str(a + b)
    assert problems == curriculum_problems(cfg)  # the same problems every run


def test_curriculum_problems_name_their_seed_and_index():
    problems = curriculum_problems(CurriculumProblemsConfig(count=3, seed=7, kinds=("subtraction",)))
    assert [p["id"] for p in problems] == ["curriculum-7-0", "curriculum-7-1", "curriculum-7-2"]


def test_a_digit_limit_no_problem_meets_is_one_line():
    cfg = CurriculumProblemsConfig(count=1, seed=0, kinds=("multiplication",), max_digits=0)
    with pytest.raises(ConfigError, match="only 0 of 1 problems have operands of at most 0 digits") as caught:
        curriculum_problems(cfg)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    "count, kinds, max_digits, issue",
    [
        (10, ("addition",), None, None),
        (10, ("addition", "division"), 2, None),
        (0, ("addition",), None, "curriculum.count (0) must be at least 1"),
        (10, ("algebra", "addition"), None, "curriculum.kinds: unknown kind algebra; choose from "),
        (10, (), None, "curriculum.kinds: unknown kind (none); choose from "),
        (10, ("addition",), 1, "curriculum.max_digits (1) must be at least 2 (the curriculum's smallest problems)"),
    ],
)
def test_curriculum_issue_names_the_key_pts_and_the_evaluator_both_check(count, kinds, max_digits, issue):
    from phijax.data.problems import curriculum_issue

    got = curriculum_issue(count, kinds, max_digits, prefix="curriculum.")
    assert got is None if issue is None else got is not None and got.startswith(issue)


def test_a_verifier_reading_another_field_gets_problems_without_answer_or_tests(tmp_path):
    """PTS passes the fields its verifier's `*_field` options name: a file of {query, solution} is read for
    `answer_field: solution`, and a line without `solution` is refused naming it."""
    from phijax.pts.driver import load_problems

    path = write(tmp_path, json.dumps({"query": "Compute 2 + 2.", "solution": "4"}))
    job = load_job(PTSJob, [], [f"problems={path}", "verifier_options={answer_field: solution}"])
    assert load_problems(job) == [{"id": "1", "query": "Compute 2 + 2.", "solution": "4"}]
    with pytest.raises(ProblemError, match="problem has neither `answer` nor `tests`"):
        load_problems(load_job(PTSJob, [], [f"problems={path}"]))
    bad = write(tmp_path, json.dumps(GOOD), name="bad.jsonl")
    with pytest.raises(ProblemError, match=r"bad.jsonl:1: problem has no `solution`; add what the verifier checks"):
        read_problems(bad, fields=("solution",))

"""Verifiers: math final-answer extraction and matching; the verifier plugins (the sandbox: tests/verify)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import phijax_plugins.verifiers as builtin_verifiers
import pytest

from phijax.plugins.testing import make_registry
from phijax.verify import ProblemError
from phijax.verify.answers import answers_match, extract_answer, normalize_answer
from phijax.verify.sandbox import extract_code

ROOT = Path(__file__).resolve().parents[2]


# ------------------------------------------------------------------------------------ math answers
@pytest.mark.parametrize(
    "text,answer",
    [
        (r"so the result is \boxed{42}.", "42"),
        (r"\boxed{\frac{3}{4}}", r"\frac{3}{4}"),
        (r"first \boxed{1} then finally \boxed{x^{2} + \sqrt{\frac{1}{2}}}", r"x^{2} + \sqrt{\frac{1}{2}}"),
        (r"\fbox{7}", "7"),
        (r"\boxed 9 is it", "9"),
        ("She has 3 apples, buys 4, so 7 in total.", "7"),
        ("The total is 1,234,567 dollars", "1,234,567"),
        ("a ratio of 3/4", "3/4"),
        ("it drops to -2.5 degrees", "-2.5"),
        ("no numbers here", None),
        (r"unclosed \boxed{12 and then 13", "13"),
    ],
)
def test_extract_answer(text, answer):
    assert extract_answer(text) == answer


@pytest.mark.parametrize(
    "candidate,reference",
    [
        ("0.75", "3/4"),
        (r"\frac{3}{4}", "0.75"),
        (r"\dfrac34", "3/4"),
        ("5.0", "5"),
        ("5.00", "5"),
        ("1,000", "1000"),
        (r"\$12.50", "12.5"),
        ("$12.50$", "12.5"),
        (r"5\text{ cm}", "5"),
        ("12 dollars", "12"),
        (r"50\%", "50"),
        (r"90^\circ", "90"),
        (r"-\frac{1}{2}", "-0.5"),
        (r"\left(1, 2\right)", "(1,2)"),
        (r"\text{Paris}", "paris"),
        ("x + 1", "x+1"),
        ("7.", "7"),
        ("x = 5", "5"),
        (r"\text{(B)}", "B"),
        ("(c)", "C"),
        ("5cm", "5"),
        ("9 m^2", "9"),
        ("3 red apples", "3"),
        ("3x", "3x"),
    ],
)
def test_equivalent_answers_match(candidate, reference):
    assert answers_match(candidate, reference)


@pytest.mark.parametrize(
    "candidate,reference",
    [
        ("0.76", "3/4"),
        ("5", "50"),
        ("3x", "3"),
        ("2 x", "2"),
        ("4y^2", "4"),
        ("1,000", "100"),
        ("-2", "2"),
        (None, "3"),
        ("", ""),
        ("(1,2)", "(2,1)"),
    ],
)
def test_different_answers_do_not_match(candidate, reference):
    assert not answers_match(candidate, reference)


def test_normalize_answer_canonical_forms():
    assert normalize_answer(r"\frac{10}{4}") == "10/4"
    assert normalize_answer("2,500.0") == "2500"
    assert normalize_answer(r"\text{(B)}") == "b"
    assert normalize_answer("y = 2x + 1") == "2x+1"


# -------------------------------------------------------------------------------------- code
def test_extract_code_prefers_the_last_python_block():
    response = (
        "try:\n```\nprint(0)\n```\nbetter:\n```python\ndef f(): return 1\n```\nor\n```py\ndef f(): return 2\n```\n"
    )
    assert extract_code(response) == "def f(): return 2\n"
    assert extract_code("```\nx = 1\n```") == "x = 1\n"
    assert extract_code("def g():\n    return 3\n") == "def g():\n    return 3\n"


ADD = "def add(a, b):\n    return a + b\n"  # the sandbox itself is tested in tests/verify/test_sandbox.py


# ------------------------------------------------------------------------------- verifier plugins
@pytest.fixture
def registry():
    return make_registry(builtin_verifiers, builtins=False)


def test_verifiers_are_registered_and_declared_as_entry_point(registry):
    assert {"math_answer", "python_tests"} <= set(registry.names("verifiers"))
    entry_points = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"]["phijax"]
    assert entry_points["builtin_verifiers"] == "phijax_plugins.verifiers"


def test_math_answer_verifier(registry):
    verify = registry.create("verifiers", "math_answer")
    assert verify(r"... so $x = \boxed{\frac{3}{4}}$", {"answer": "0.75"})
    assert verify("Adding them gives 1,200.", {"answer": r"The sum is \boxed{1200}."})
    assert not verify(r"\boxed{4}", {"answer": "5"})
    with pytest.raises(ProblemError, match="no 'answer' field"):
        verify("5", {"solution": "5"})
    assert registry.create("verifiers", "math_answer", answer_field="solution")("5", {"solution": "5"})


def test_python_tests_verifier(registry):
    verify = registry.create("verifiers", "python_tests", timeout_s=5.0)
    problem = {"tests": ["assert add(2, 3) == 5", "assert add(0, 0) == 0"]}
    assert verify(f"Here it is:\n```python\n{ADD}```\n", problem)
    assert not verify("```python\ndef add(a, b):\n    return 5\n```", problem)
    humaneval = {"tests": "def check(candidate):\n    assert candidate(1, 2) == 3\n", "entry_point": "add"}
    assert verify(ADD, humaneval)
    assert not verify(ADD.replace("+", "*"), humaneval)


def test_python_tests_verifier_is_safe_from_several_threads(registry):
    from concurrent.futures import ThreadPoolExecutor

    verify = registry.create("verifiers", "python_tests", timeout_s=10.0)
    problem = {"tests": "assert add(2, 3) == 5"}
    codes = [ADD, ADD.replace("+", "-")] * 4
    with ThreadPoolExecutor(4) as pool:
        verdicts = list(pool.map(lambda code: verify(code, problem), codes))
    assert verdicts == [True, False] * 4

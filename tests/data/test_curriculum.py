"""The synthetic curriculum: deterministic, every answer and every worked step arithmetically right
(checked by re-doing the arithmetic the text states), and served as a data source."""

from __future__ import annotations

import re

import pytest

from phijax.data.curriculum import KINDS, check_answer, make_problem
from phijax.verify.answers import extract_answer

QUESTION = re.compile(r"Compute (\d+) ([+\-×]) (\d+)\.|Divide (\d+) by (\d+);")
SUM = re.compile(r"(?<![\d+] )((?:\d+ \+ )+\d+)(?: \(carried\))? = (\d+)")
STEP = re.compile(r"(\d+) ([\-×÷]) (\d+)(?: \(lent\))? = (\d+)")


def expected_answer(question: str) -> str:
    m = QUESTION.search(question)
    assert m, question
    if m.group(4):
        a, b = int(m.group(4)), int(m.group(5))
        return f"{a // b} remainder {a % b}"
    a, op, b = int(m.group(1)), m.group(2), int(m.group(3))
    return str({"+": a + b, "-": a - b, "×": a * b}[op])


def test_same_seed_and_index_give_the_same_problem():
    assert make_problem(3, 17) == make_problem(3, 17)
    assert make_problem(3, 17) != make_problem(4, 17)
    assert {make_problem(0, i).kind for i in range(200)} == set(KINDS)


@pytest.mark.parametrize("seed", [0, 1])
def test_answers_and_every_stated_step_are_correct(seed):
    for index in range(400):
        problem = make_problem(seed, index)
        assert problem.answer == expected_answer(problem.question)
        assert extract_answer(problem.solution) == problem.answer
        assert check_answer(problem, problem.solution)
        for terms, result in SUM.findall(problem.solution):
            assert sum(int(t) for t in terms.split(" + ")) == int(result), problem.solution
        for a, op, b, result in STEP.findall(problem.solution):
            a, b, result = int(a), int(b), int(result)
            want = a - b if op == "-" else a * b if op == "×" else a // b
            assert want == result, problem.solution


def test_check_answer_rejects_wrong_or_missing_answers():
    problem = make_problem(0, 5)
    assert not check_answer(problem, "I think the answer is big.")
    assert not check_answer(problem, f"Answer: {problem.answer}1")
    assert check_answer(problem, f"Working...\nAnswer: 0\nOn reflection:\nAnswer: {problem.answer}")


def test_curriculum_source_serves_text_and_chat(registry):
    text = registry.create("data_sources", "curriculum", seed=2, size=1000)
    assert len(text) == 1000
    assert text[7]["text"] == make_problem(2, 7).text
    chat = registry.create("data_sources", "curriculum", seed=2, format="chat", kinds=["multiplication"])
    record = chat[7]
    assert [m["role"] for m in record["messages"]] == ["user", "assistant"]
    assert "×" in record["messages"][0]["content"]
    assert record["messages"][1]["content"].endswith(f"Answer: {record['answer']}")

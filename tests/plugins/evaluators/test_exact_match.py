"""`exact_match`: final-answer extraction and normalisation on tricky cases, prompts, maj@k."""

from __future__ import annotations

import math

import pytest
from phijax_plugins.evaluators.exact_match import majority_answer

from phijax.errors import PhijaxError
from phijax.plugins.registry import get_registry
from phijax.verify.answers import answers_match, extract_answer, reference_answer


def build(**options):
    return get_registry().create("evaluators", "exact_match", **options)


@pytest.mark.parametrize(
    "generation, reference",
    [
        (" She pays 1200 - 15 = 1185 dollars.\n#### 1185", "#### 1,185"),  # thousands comma in the reference
        (" 1,185 dollars in total.", "1185"),  # last number, comma and unit
        (" The cost is $1,185.00.", "1185"),  # $ and trailing .00 and period
        (r" so $x = \boxed{\dfrac{3}{4}}$.", r"\frac{3}{4}"),  # \dfrac vs \frac
        (r" \boxed{0.75}", r"\boxed{\frac34}"),  # decimal vs short \frac
        (r" \boxed{\dfrac{\sqrt{3}}{2}}", r"\frac{\sqrt{3}}{2}"),  # nested LaTeX left as LaTeX
        (" it falls to -7 degrees", "#### -7"),  # negative numbers
        (" \u22127", "-7"),  # a Unicode minus
        (r" \boxed{250\text{ cents}}", "250"),  # \text{} units
        (r" \boxed{\text{Paris}}", r"\text{paris}"),  # \text{} words, case
        (" Answer: 12 remainder 3.", "12 remainder 3"),  # curriculum line, trailing period
        (r" \boxed{1{,}000}", "1000"),  # LaTeX thousands
        (" 50\\%", "50"),
    ],
)
def test_equivalent_final_answers_match(generation, reference):
    assert answers_match(extract_answer(generation), reference_answer(reference))


@pytest.mark.parametrize(
    "generation, reference",
    [
        (" #### 72", "#### 7"),
        (" -7 degrees", "7"),
        (" 7 degrees", "-7"),
        (r" \boxed{\frac{3}{5}}", "3/4"),
        (" no number at all", "#### 0"),
        (" 1,185", "118"),
        (" Answer: 12 remainder 4", "12 remainder 3"),
    ],
)
def test_different_final_answers_do_not_match(generation, reference):
    assert not answers_match(extract_answer(generation), reference_answer(reference))


def test_extraction_prefers_boxed_then_hashes_then_answer_line_then_last_number():
    assert extract_answer(r"#### 3 and \boxed{4}") == "4"
    assert extract_answer("Answer: 5\n#### 6\nthen 7") == "6"
    assert extract_answer("Answer: 5\nthen 7") == "5"
    assert extract_answer("then 7 and 8") == "8"
    assert reference_answer(r"worked: \boxed{9}") == "9" and reference_answer(" 42 ") == "42"


def test_gsm8k_prompts_fewshot_layout_and_generation_settings(fixtures, fake_policy):
    answers = {"Natalia": " 48 + 24 = 72.\n#### 72\n\nQuestion: next", "Tom": " He pays $1,185.", "temperature": " 7"}
    policy = fake_policy(
        respond=lambda prompt, j: next(a for k, a in answers.items() if k in prompt.rsplit("Question:", 1)[1])
    )
    result = build(file=str(fixtures / "gsm8k.jsonl"), shots=1)(policy, seed=3)
    ((kind, prompts, settings),) = policy.calls
    assert prompts[0] == (
        "Question: A shop sells pens at $2 each. Tom buys 600 pens and gets a $15 discount. How much "
        "does he pay?\nAnswer: The pens cost 600 * 2 = <<600*2=1200>>1200 dollars.\nAfter the discount "
        "he pays 1200 - 15 = <<1200-15=1185>>1,185 dollars.\n#### 1,185\n\nQuestion: Natalia sold clips "
        "to 48 of her friends in April, and then she sold half as many clips in May. How many clips did "
        "Natalia sell altogether in April and May?\nAnswer:"
    )
    assert settings == {
        "max_new_tokens": 512,
        "temperature": 0.0,
        "num_samples": 1,
        "stop": ("Question:", "</s>", "<|im_end|>"),
        "seed": 3,
        "chat": False,
    }
    assert [s["extracted"] for s in result.samples] == [["72"], ["1,185"], ["7"]]
    assert [s["target"] for s in result.samples] == ["72", "1,185", "-7"]
    assert result.metrics == {"exact_match": pytest.approx(2 / 3)}
    assert result.stderr["exact_match"] == pytest.approx(math.sqrt((2 / 3) * (1 / 3) / 2))


def test_math_references_are_the_boxed_answer_or_the_bare_answer_field(fixtures, fake_policy):
    evaluator = build(file=str(fixtures / "math.jsonl"), template="Problem:\n{question}\n\nSolution:", chat=True)
    assert [p.answer for p in evaluator.problems] == [r"\frac{3}{4}", "6", r"\frac{\sqrt{3}}{2}", r"250\text{ cents}"]
    replies = iter([r"\boxed{0.75}", r"\boxed{6.0}", r"\boxed{\dfrac{\sqrt{3}}{2}}", r"\boxed{25}"])
    result = evaluator(fake_policy(respond=lambda p, j: next(replies)), seed=0)
    assert [s["exact_match"] for s in result.samples] == [1.0, 1.0, 1.0, 0.0]


def test_maj_at_k_votes_over_normalised_answers(fixtures, fake_policy):
    votes = {
        "Natalia": [" #### 70", r" \boxed{72}", " #### 72.0", " #### 70"],  # 70 x2, 72 x2 (72.0 is 72): 70 first
        "Tom": [" #### 1185", " #### 1184", " #### 1184", " #### 1,185 "],  # tie 2:2 -> first seen (1185)
        "temperature": [" no idea", " #### 7", " #### 7", " #### -7"],
    }  # first sample wrong, majority 7 wrong
    policy = fake_policy(respond=lambda p, j: next(v for k, v in votes.items() if k in p)[j])
    result = build(file=str(fixtures / "gsm8k.jsonl"), samples=4, temperature=0.7)(policy, seed=0)
    assert policy.calls[0][2]["num_samples"] == 4
    assert [s["majority"] for s in result.samples] == ["70", "1185", "7"]
    assert result.metrics == {"exact_match": pytest.approx(1 / 3), "maj@4": pytest.approx(1 / 3)}


@pytest.mark.parametrize(
    "answers",
    [
        ["3", "0.5", r"\frac12", "3", None, "1/2"],
        [None, None],
        ["a", "b", "B"],
        ["2", "2.0", "3", "3", "3"],
        ["x", None, "y"],
    ],
)
def test_majority_answer_matches_a_brute_force_count(answers):
    groups = [[a for a in answers if a is not None and answers_match(a, b)] for b in answers if b is not None]
    expected = None
    if groups:
        best = max(len(g) for g in groups)
        expected = next(b for b, g in zip([a for a in answers if a is not None], groups) if len(g) == best)
    assert majority_answer(answers) == expected


def test_bad_options_are_one_line_errors(fixtures):
    with pytest.raises(PhijaxError, match=r"samples: 4 \(maj@k\) needs temperature > 0"):
        build(file=str(fixtures / "gsm8k.jsonl"), samples=4)
    with pytest.raises(PhijaxError, match=r"gsm8k.jsonl:1: `exact_match` item has no question field"):
        build(file=str(fixtures / "gsm8k.jsonl"), question_field="query")


def test_the_math_answer_verifier_reads_references_the_same_way():
    verify = get_registry().create("verifiers", "math_answer")
    assert verify("He pays $1,185.", {"answer": "1200 - 15 = <<1200-15=1185>>1,185\n#### 1,185"})
    assert verify(r"\boxed{\dfrac{3}{4}}", {"answer": r"so \boxed{\frac{3}{4}}."})
    assert not verify("#### 1184", {"answer": "#### 1,185"})

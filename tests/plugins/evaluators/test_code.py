"""`code`: pass@k against closed forms and brute force, HumanEval/MBPP prompts, candidates in the sandbox."""

from __future__ import annotations

import itertools
import json
import math

import pytest
from phijax_plugins.evaluators.code import pass_at_k

from phijax.errors import PhijaxError
from phijax.plugins.registry import get_registry


def build(**options):
    return get_registry().create("evaluators", "code", **options)


def brute_force_pass_at_k(passed: list[bool], k: int) -> float:
    """The share of the k-subsets of the n samples that hold at least one passing sample."""
    subsets = list(itertools.combinations(passed, k))
    return sum(any(s) for s in subsets) / len(subsets)


@pytest.mark.parametrize("n", range(1, 8))
def test_pass_at_k_is_the_share_of_k_subsets_with_a_pass(n):
    for c in range(n + 1):
        for k in range(1, n + 1):
            passed = [True] * c + [False] * (n - c)
            assert pass_at_k(n, c, k) == pytest.approx(brute_force_pass_at_k(passed, k), abs=1e-12)


def test_pass_at_k_closed_forms():
    assert pass_at_k(10, 3, 1) == pytest.approx(0.3)  # pass@1 = c / n
    assert pass_at_k(200, 0, 100) == 0.0 and pass_at_k(5, 5, 1) == 1.0
    assert pass_at_k(10, 8, 3) == 1.0  # n - c < k: every subset passes
    assert pass_at_k(10, 2, 2) == pytest.approx(1 - math.comb(8, 2) / math.comb(10, 2))
    assert pass_at_k(200, 17, 50) == pytest.approx(1 - math.prod(1 - 50 / i for i in range(184, 201)))
    with pytest.raises(ValueError):
        pass_at_k(3, 4, 1)


def test_humaneval_completions_run_in_the_sandbox(fixtures, fake_policy):
    completions = {"def add": "    return a + b\n", "def is_even": "    return n % 2 == 1\n"}
    policy = fake_policy(respond=lambda p, j: next(v for k, v in completions.items() if k in p))
    evaluator = build(file=str(fixtures / "humaneval.jsonl"))
    result = evaluator(policy, seed=0)
    ((_, prompts, settings),) = policy.calls
    assert prompts == [t.values["prompt"] for t in evaluator.tasks]
    assert settings["stop"] == ("\nclass", "\ndef", "\n#", "\nif", "\nprint") and settings["chat"] is False
    assert [s["passed"] for s in result.samples] == [[True], [False]]
    assert result.metrics == {"pass@1": 0.5} and result.stderr["pass@1"] == pytest.approx(0.5)


def test_humaneval_chat_answers_are_read_from_their_code_block(fixtures, fake_policy):
    reply = "Here you go:\n```python\ndef add(a, b):\n    return a + b\n```\n"
    policy = fake_policy(respond=lambda p, j: reply if "def add" in p else "```python\n    return n % 2 == 0\n```")
    result = build(file=str(fixtures / "humaneval.jsonl"), chat=True)(policy, seed=0)
    assert policy.calls[0][2]["stop"] == () and policy.calls[0][2]["chat"] is True
    assert policy.calls[0][1][0].startswith("Complete this Python function.")
    assert [s["passed"] for s in result.samples] == [[True], [True]]  # the body-only block gets the prompt prepended


def test_mbpp_fewshot_prompt_setup_code_and_pass_at_k_over_samples(fixtures, fake_policy):
    tasks = [json.loads(line) for line in (fixtures / "mbpp.jsonl").read_text().splitlines()]
    good = {t["text"]: t["code"] for t in tasks}

    def respond(prompt: str, j: int) -> str:
        text = prompt.rsplit("here is your task: ", 1)[1].split(" Your code should", 1)[0]
        return (good[text] if j % 2 == 0 else "def nothing(): pass") + "\n[DONE]\nmore"

    policy = fake_policy(respond=respond)
    result = build(file=str(fixtures / "mbpp.jsonl"), shots=1, samples=4, k=[1, 2, 4], temperature=0.8, workers=2)(
        policy, seed=0
    )
    prompt = policy.calls[0][1][0]
    assert prompt.startswith(
        "You are an expert Python programmer, and here is your task: Write a python function to "
        "identify non-prime numbers. Your code should pass these tests:\n\nassert is_not_prime(2) "
        "== False\nassert is_not_prime(10) == True\nassert is_not_prime(35) == True\n[BEGIN]\n"
        "def is_not_prime(n):"
    )
    assert (
        "[DONE]\n\nYou are an expert Python programmer, and here is your task: Write a function to find the shared"
        in prompt
        and prompt.endswith("[BEGIN]\n")
    )
    assert policy.calls[0][2]["stop"] == ("[DONE]",)
    assert [s["passed"] for s in result.samples] == [[True, False, True, False]] * 3  # task 4 needs its setup code
    expected = {f"pass@{k}": brute_force_pass_at_k([True, False, True, False], k) for k in (1, 2, 4)}
    assert result.metrics == pytest.approx(expected) and result.stderr == {"pass@1": 0.0, "pass@2": 0.0, "pass@4": 0.0}


def test_bad_options_are_one_line_errors(fixtures, tmp_path):
    with pytest.raises(PhijaxError, match=r"every k in \[1, 5\] must be between 1 and samples \(4\)"):
        build(file=str(fixtures / "mbpp.jsonl"), samples=4, k=[1, 5], temperature=0.8)
    with pytest.raises(PhijaxError, match="samples: 2 needs temperature > 0"):
        build(file=str(fixtures / "mbpp.jsonl"), samples=2)
    path = tmp_path / "x.jsonl"
    path.write_text('{"task_id": 1, "prompt": "p"}\n')
    with pytest.raises(PhijaxError, match=r"x.jsonl:1: neither HumanEval"):
        build(file=str(path))

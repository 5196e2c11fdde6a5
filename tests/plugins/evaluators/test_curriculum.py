"""`curriculum`: greedy accuracy on held-out curriculum problems, judged by the configured verifier."""

from __future__ import annotations

import pytest

from phijax.data.config import CurriculumProblemsConfig
from phijax.data.problems import curriculum_problems
from phijax.errors import PhijaxError
from phijax.plugins import hookimpl
from phijax.plugins.registry import get_registry


def test_problems_are_the_pts_draw_and_responses_are_judged_by_math_answer(fake_policy):
    problems = curriculum_problems(
        CurriculumProblemsConfig(count=6, seed=2, kinds=("addition", "subtraction"), max_digits=3)
    )
    right = {p["query"]: p["answer"] for p in problems[::2]}  # every other problem answered correctly
    policy = fake_policy(respond=lambda prompt, j: f"Working...\nAnswer: {right.get(prompt, '-1')}")
    evaluator = get_registry().create(
        "evaluators", "curriculum", count=6, seed=2, kinds=["addition", "subtraction"], max_digits=3
    )
    result = evaluator(policy, seed=5)
    ((_, prompts, settings),) = policy.calls
    assert prompts == [p["query"] for p in problems]
    assert settings == {
        "max_new_tokens": 256,
        "temperature": 0.0,
        "num_samples": 1,
        "stop": (),
        "seed": 5,
        "chat": True,
    }
    assert [s["accuracy"] for s in result.samples] == [1.0, 0.0] * 3
    assert result.metrics == {"accuracy": 0.5} and result.stderr["accuracy"] == pytest.approx((0.25 / 5) ** 0.5)
    assert [i["id"] for i in evaluator.items()] == [p["id"] for p in problems]


def test_division_answers_with_a_remainder_are_judged_too(fake_policy):
    evaluator = get_registry().create("evaluators", "curriculum", count=3, seed=2, kinds=["division"])
    answers = {p["query"]: p["answer"] for p in evaluator.problems}
    result = evaluator(fake_policy(respond=lambda prompt, j: f"Answer: {answers[prompt]}."), seed=0)
    assert all(" remainder " in a for a in answers.values()) and result.metrics["accuracy"] == 1.0


def test_text_format_sends_the_textbook_prompt_as_raw_text(fake_policy):
    policy = fake_policy()
    evaluator = get_registry().create("evaluators", "curriculum", count=2, prompt_format="text", stop=["Exercise."])
    evaluator(policy, seed=0)
    ((_, prompts, settings),) = policy.calls
    assert prompts[0] == f"Exercise. {evaluator.problems[0]['query']}\n\nSolution."
    assert settings["chat"] is False and settings["stop"] == ("Exercise.",)


class SeenVerifier:
    """A plugin verifier that accepts answers 11 and 13 and remembers what it judged."""

    seen: list[str] = []

    @hookimpl
    def phijax_register_verifiers(self, register):
        def factory(accept=("11", "13")):
            def verify(response, problem):
                SeenVerifier.seen.append(problem["query"])
                return problem["answer"] in accept

            return verify

        register("seen", factory)


def test_the_verifier_is_the_configured_plugin_with_its_options(phijax_registry, fake_policy):
    registry = phijax_registry(SeenVerifier())
    evaluator = registry.create(
        "evaluators",
        "curriculum",
        count=4,
        seed=2,
        verifier="seen",
        verifier_options={
            "accept": [
                p["answer"] for p in curriculum_problems(CurriculumProblemsConfig(count=4, seed=2, kinds=("addition",)))
            ][:1]
        },
    )
    result = evaluator(fake_policy(), seed=0)
    assert result.metrics["accuracy"] == 0.25 and SeenVerifier.seen == [p["query"] for p in evaluator.problems]


@pytest.mark.parametrize(
    "options, message",
    [
        ({"kinds": ["algebra"]}, "unknown kind algebra"),
        ({"count": 0}, r"count \(0\)"),
        ({"prompt_format": "raw"}, "prompt_format 'raw' must be chat or text"),
        ({"max_digits": 1}, "max_digits"),
        ({"max_new_tokens": 0}, r"max_new_tokens \(0\) must be at least 1"),
    ],
)
def test_bad_options_are_one_line_errors(options, message):
    with pytest.raises(PhijaxError, match=message):
        get_registry().create("evaluators", "curriculum", **options)

"""`ifeval`: every checker with a passing and a failing response; strict vs loose; the metrics."""

from __future__ import annotations

import json

import pytest
from phijax_plugins.evaluators.ifeval import loose_variants
from phijax_plugins.evaluators.ifeval_checks import CHECKS

from phijax.errors import PhijaxError
from phijax.plugins.registry import get_registry

# instruction id -> (kwargs, a response that follows it, a response that does not)
CASES = {
    "keywords:existence": ({"keywords": ["lake", "Moon"]}, "The moon over the LAKE.", "The moon over the sea."),
    "keywords:frequency": (
        {"keyword": "tea", "frequency": 3, "relation": "at least"},
        "Tea, tea and more TEA.",
        "Tea and more tea.",
    ),
    "keywords:forbidden_words": ({"forbidden_words": ["bad"]}, "A badge is fine.", "That was Bad."),
    "keywords:letter_frequency": (
        {"letter": "z", "let_frequency": 2, "let_relation": "less than"},
        "A zebra.",
        "Zig zag.",
    ),
    "length_constraints:number_words": (
        {"num_words": 5, "relation": "less than"},
        "Four words right here.",
        "These are five words here.",
    ),
    "length_constraints:number_sentences": (
        {"num_sentences": 2, "relation": "at least"},
        "Dr. Who came. He left!",
        "Dr. Who came at 3.5 p.m today",
    ),
    "length_constraints:number_paragraphs": (
        {"num_paragraphs": 2},
        "First part.\n***\nSecond part.",
        "First part.\n***\n\n***\nSecond part.",
    ),
    "length_constraints:nth_paragraph_first_word": (
        {"num_paragraphs": 3, "nth_paragraph": 2, "first_word": "then"},
        'Start here.\n\n"Then, we go."\n\nThe end.',
        "Start here.\n\nAnd then we go.\n\nThe end.",
    ),
    "detectable_content:number_placeholders": (
        {"num_placeholders": 2},
        "Dear [name], at [address].",
        "Dear [name], at home.",
    ),
    "detectable_content:postscript": ({"postscript_marker": "P.S."}, "Hello.\np. s. see you", "Hello.\nPS see you"),
    "detectable_format:number_bullet_lists": (
        {"num_bullets": 2},
        "Items:\n* one\n- two",
        "Items:\n* one\n* two\n* three",
    ),
    "detectable_format:constrained_response": ({}, "Well. My answer is maybe.", "My answer is perhaps."),
    "detectable_format:number_highlighted_sections": ({"num_highlights": 2}, "*one* and **two**", "*one* and ** **"),
    "detectable_format:multiple_sections": (
        {"section_spliter": "Section", "num_sections": 2},
        "Section 1\nintro\nSection 2\nend",
        "Section 1\nintro and end",
    ),
    "detectable_format:json_format": ({}, '```json\n{"a": [1, 2]}\n```', '{"a": [1, 2]} and more'),
    "detectable_format:title": ({}, "<<A Poem>>\nroses", "<< >>\nroses"),
    "combination:two_responses": ({}, "First answer.\n******\nSecond answer.", "Same.\n******\nSame."),
    "combination:repeat_prompt": (
        {"prompt_to_repeat": "Write a poem."},
        "write a poem. Roses are red.",
        "Roses are red. Write a poem.",
    ),
    "startend:end_checker": (
        {"end_phrase": "Any other questions?"},
        'Done. Any other questions?"',
        "Any other questions? Done.",
    ),
    "startend:quotation": ({}, '"All quoted."', '"Half quoted.'),
    "change_case:capital_word_frequency": (
        {"capital_frequency": 2, "capital_relation": "at least"},
        "USE the API NOW",
        "Use the API now",
    ),
    "change_case:english_capital": ({}, "ALL CAPS, 100%!", "ALL CAPS but one"),
    "change_case:english_lowercase": ({}, "all lower, 100%!", "all lower but One"),
    "punctuation:no_comma": ({}, "No commas here.", "One, comma."),
}


def test_every_checker_has_a_case_and_at_least_fifteen_instruction_types_are_covered():
    assert set(CASES) == set(CHECKS) and len(CHECKS) >= 15


@pytest.mark.parametrize("instruction", sorted(CASES))
def test_checker_accepts_the_following_response_and_rejects_the_other(instruction):
    kwargs, follows, breaks = CASES[instruction]
    assert CHECKS[instruction](follows, **kwargs) is True
    assert CHECKS[instruction](breaks, **kwargs) is False


def test_loose_variants_drop_first_and_last_lines_and_asterisks():
    variants = loose_variants("Sure:\n*body*\nHope it helps")
    assert variants == [
        "Sure:\n*body*\nHope it helps",
        "*body*\nHope it helps",
        "Sure:\n*body*",
        "*body*",
        "Sure:\nbody\nHope it helps",
        "body\nHope it helps",
        "Sure:\nbody",
        "body",
    ]


def prompts_file(tmp_path, rows):
    path = tmp_path / "ifeval.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_prompt_and_instruction_level_accuracy_strict_and_loose(tmp_path, fake_policy):
    file = prompts_file(
        tmp_path,
        [
            {
                "key": 1,
                "prompt": "P1",
                "instruction_id_list": ["startend:quotation", "punctuation:no_comma"],
                "kwargs": [{}, {}],
            },
            {"key": 2, "prompt": "P2", "instruction_id_list": ["detectable_format:title"], "kwargs": [{}]},
            {
                "key": 3,
                "prompt": "P3",
                "instruction_id_list": ["change_case:english_lowercase", "punctuation:no_comma"],
                "kwargs": [{}, {}],
            },
        ],
    )
    replies = {"P1": 'Here it is:\n"a poem"', "P2": "<<Title>> text", "P3": "lower, with a comma"}
    policy = fake_policy(respond=lambda p, j: replies[p])
    result = get_registry().create("evaluators", "ifeval", file=file)(policy, seed=0)
    assert policy.calls[0][2]["chat"] is True and policy.calls[0][2]["temperature"] == 0.0
    # strict: P1 quotation fails (first line), comma ok; P2 ok; P3 lowercase ok, comma fails
    # loose:  P1 quotation passes without the first line; P3 unchanged
    assert [s["strict"] for s in result.samples] == [[False, True], [True], [True, False]]
    assert [s["loose"] for s in result.samples] == [[True, True], [True], [True, False]]
    assert result.metrics == pytest.approx(
        {
            "prompt_level_strict_acc": 1 / 3,
            "inst_level_strict_acc": 3 / 5,
            "prompt_level_loose_acc": 2 / 3,
            "inst_level_loose_acc": 4 / 5,
            "skipped_instructions": 0.0,
        }
    )
    assert result.stderr["inst_level_strict_acc"] == pytest.approx((0.6 * 0.4 / 4) ** 0.5)


def test_the_published_format_with_null_kwargs_and_unknown_instructions(fixtures, fake_policy):
    with pytest.raises(PhijaxError, match=r"ifeval.jsonl:4: no checker for instruction `language:response_language`"):
        get_registry().create("evaluators", "ifeval", file=str(fixtures / "ifeval.jsonl"))
    evaluator = get_registry().create("evaluators", "ifeval", file=str(fixtures / "ifeval.jsonl"), skip_unknown=True)
    assert [len(p.instructions) for p in evaluator.prompts] == [3, 2, 2, 1]
    assert evaluator.prompts[0].instructions[2].kwargs == {"relation": "at least", "num_words": 300}
    result = evaluator(fake_policy(respond=lambda p, j: "no comma here"), seed=0)
    assert result.metrics["skipped_instructions"] == 1.0


@pytest.mark.parametrize(
    "instruction, kwargs, message",
    [
        ("keywords:frequency", {"keyword": "a", "frequency": 2}, "kwargs .* do not fit its checker"),
        ("keywords:frequency", {"keyword": "a", "frequency": 2, "relation": "more than"}, "has relation: 'more than'"),
    ],
)
def test_kwargs_that_do_not_fit_the_checker_name_file_and_line(tmp_path, instruction, kwargs, message):
    file = prompts_file(tmp_path, [{"key": 1, "prompt": "P", "instruction_id_list": [instruction], "kwargs": [kwargs]}])
    with pytest.raises(PhijaxError, match=rf"ifeval.jsonl:1: instruction `{instruction}` {message}"):
        get_registry().create("evaluators", "ifeval", file=file)

"""Shared evaluator machinery: registration, JSONL errors, options, capabilities, standard errors."""

from __future__ import annotations

import dataclasses
import gzip
import math
import statistics

import pytest
from phijax_plugins.evaluators.base import (
    EvaluatorError,
    MissingCapability,
    check_sampling,
    fewshot_prompt,
    fields_to_try,
    make_options,
    mean_stderr,
    read_items,
)

from phijax.data.records import DataError, read_jsonl
from phijax.errors import PhijaxError
from phijax.plugins.protocols import GENERATE, LOGLIKELIHOOD, Evaluator
from phijax.plugins.registry import get_registry

BUILT = {
    "multiple_choice": {"file": "mmlu.jsonl"},
    "exact_match": {"file": "gsm8k.jsonl"},
    "code": {"file": "humaneval.jsonl"},
    "ifeval": {"file": "ifeval.jsonl", "skip_unknown": True},
    "curriculum": {"count": 3, "max_digits": 2},
}


def test_all_five_evaluators_arrive_through_the_builtin_entry_point():
    registry = get_registry()
    for name in BUILT:
        assert registry.plugin_of("evaluators", name) == "phijax"


@pytest.mark.parametrize("name", sorted(BUILT))
def test_each_evaluator_satisfies_the_protocol_and_lists_its_items(name, fixtures):
    options = {k: str(fixtures / v) if k == "file" else v for k, v in BUILT[name].items()}
    evaluator = get_registry().create("evaluators", name, **options)
    assert isinstance(evaluator, Evaluator)
    items = list(evaluator.items())
    assert items and all(isinstance(i["id"], str) and i["text"].strip() for i in items)
    assert len({i["id"] for i in items}) == len(items)


@pytest.mark.parametrize(
    "name, needs",
    [
        ("multiple_choice", LOGLIKELIHOOD),
        ("exact_match", GENERATE),
        ("code", GENERATE),
        ("ifeval", GENERATE),
        ("curriculum", GENERATE),
    ],
)
def test_a_policy_without_the_needed_capability_is_refused_in_one_line_before_any_call(
    name, needs, fixtures, fake_policy
):
    options = {k: str(fixtures / v) if k == "file" else v for k, v in BUILT[name].items()}
    evaluator = get_registry().create("evaluators", name, **options)
    assert needs in evaluator.requires
    policy = fake_policy(capabilities=tuple({GENERATE, LOGLIKELIHOOD} - {needs}))
    with pytest.raises(MissingCapability) as err:
        evaluator(policy, seed=0)
    assert isinstance(err.value, PhijaxError) and "\n" not in str(err.value)
    assert f"`{needs}`" in str(err.value) and name in str(err.value)
    assert policy.calls == []


def test_unknown_and_missing_options_are_one_line_errors(fixtures):
    registry = get_registry()
    with pytest.raises(PhijaxError, match="unknown option `shot`; known options: file, shots"):
        registry.create("evaluators", "multiple_choice", file=str(fixtures / "mmlu.jsonl"), shot=5)
    with pytest.raises(PhijaxError, match="needs the option `file`"):
        registry.create("evaluators", "exact_match")


@dataclasses.dataclass(frozen=True)
class Options:
    file: str
    shots: int = 0
    fewshot_file: str | None = None
    limit: int | None = None
    stop: tuple[str, ...] = ()
    k: tuple[int, ...] | None = None
    tags: list[str] = dataclasses.field(default_factory=list)


def test_lists_given_for_tuple_options_become_tuples_and_other_values_stay():
    options = make_options(Options, {"file": "f", "stop": ["a", "b"], "k": [1, 2], "tags": ["x"]}, "demo")
    assert (options.stop, options.k, options.tags) == (("a", "b"), (1, 2), ["x"])
    assert make_options(Options, {"file": "f", "k": None}, "demo").k is None


def numbered(record, where):
    return record["n"]


def test_items_are_the_first_limit_and_the_pool_is_the_fewshot_file_or_the_items(tmp_path):
    (tmp_path / "items.jsonl").write_text("".join(f'{{"n": {n}}}\n' for n in range(5)))
    (tmp_path / "shots.jsonl").write_text('{"n": 10}\n{"n": 11}\n')
    items, pool = read_items(Options(str(tmp_path / "items.jsonl"), shots=2, limit=3), "demo", numbered)
    assert items == [0, 1, 2] and pool is items
    options = Options(str(tmp_path / "items.jsonl"), shots=2, fewshot_file=str(tmp_path / "shots.jsonl"))
    assert read_items(options, "demo", numbered) == ([0, 1, 2, 3, 4], [10, 11])
    with pytest.raises(EvaluatorError, match=r"shots \(3\) must be between 0 and the 2 examples fewshot_file holds"):
        read_items(Options(options.file, shots=3, fewshot_file=options.fewshot_file), "demo", numbered)


def test_fewshot_prompt_is_description_then_each_example_and_separator_then_the_query():
    assert fewshot_prompt(["Q1 A1", "Q2 A2"], "Q3", "\n\n", "Maths.\n") == "Maths.\nQ1 A1\n\nQ2 A2\n\nQ3"
    assert fewshot_prompt([], "Q3", "\n\n") == "Q3"


def test_an_option_naming_a_field_replaces_the_detected_names():
    assert fields_to_try("stem", ("question", "query")) == ("stem",)
    assert fields_to_try(None, ("question", "query")) == ("question", "query")


def test_several_greedy_samples_are_refused_in_one_line():
    check_sampling("demo", 4, 0.7)
    check_sampling("demo", 1, 0.0)
    with pytest.raises(EvaluatorError) as err:
        check_sampling("demo", 4, 0.0, " (maj@k)")
    assert str(err.value) == (
        "evaluator `demo`: samples: 4 (maj@k) needs temperature > 0 (e.g. 0.8); greedy samples are all the same"
    )


# ------------------------------------------------------------------------------------- JSONL files
def test_read_jsonl_yields_line_numbers_and_skips_blank_lines(tmp_path):
    path = tmp_path / "b.jsonl"
    path.write_text('{"a": 1}\n\n  \n{"a": 2}\n')
    assert list(read_jsonl(path)) == [(1, {"a": 1}), (4, {"a": 2})]


def test_read_jsonl_reads_gzip_files_transparently(tmp_path):
    path = tmp_path / "b.jsonl.gz"
    path.write_bytes(gzip.compress(b'{"a": 1}\n\n{"a": "\xc3\xa9"}\n'))
    assert list(read_jsonl(path)) == [(1, {"a": 1}), (3, {"a": "\u00e9"})]
    path.write_bytes(gzip.compress(b'{"a": 1}\n{"a": \n'))
    with pytest.raises(DataError, match=r"b.jsonl.gz:2: not valid JSON"):
        list(read_jsonl(path))
    path.write_bytes(b'{"a": 1}\n')  # named .gz but plain text
    with pytest.raises(DataError, match=r"b.jsonl.gz: not a readable gzip file .*drop the .gz") as err:
        list(read_jsonl(path, what="benchmark file"))
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    "content, message",
    [
        ('{"a": 1}\n{"a": \n', "b.jsonl:2: not valid JSON"),
        ('{"a": 1}\n[1, 2]\n', "b.jsonl:2: a line of a benchmark file must be a JSON object, got list"),
        (b'{"a": "\xff"}\n', "b.jsonl:1: not UTF-8"),
    ],
)
def test_a_malformed_line_is_named_by_file_and_line(tmp_path, content, message):
    path = tmp_path / "b.jsonl"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(DataError) as err:
        list(read_jsonl(path, what="benchmark file"))
    assert message in str(err.value) and "\n" not in str(err.value)


def test_a_missing_benchmark_file_is_a_one_line_error_through_the_registry(tmp_path):
    with pytest.raises(PhijaxError) as err:
        get_registry().create("evaluators", "multiple_choice", file=str(tmp_path / "nope.jsonl"))
    assert "nope.jsonl not found" in str(err.value) and "\n" not in str(err.value)


def test_a_bad_item_names_its_file_and_line(tmp_path):
    path = tmp_path / "mc.jsonl"
    path.write_text(
        '{"question": "q", "choices": ["a", "b"], "answer": 0}\n{"question": "q", "choices": ["a", "b"], "answer": 5}\n'
    )
    with pytest.raises(PhijaxError, match=r"mc.jsonl:2: answer 5 names none of the 2 choices"):
        get_registry().create("evaluators", "multiple_choice", file=str(path))


# ------------------------------------------------------------------------------------- stderr
@pytest.mark.parametrize("n, correct", [(2, 1), (5, 2), (10, 0), (10, 10), (37, 11), (1000, 613)])
def test_stderr_of_an_accuracy_is_the_binomial_closed_form(n, correct):
    p = correct / n
    assert mean_stderr([1.0] * correct + [0.0] * (n - correct)) == pytest.approx(math.sqrt(p * (1 - p) / (n - 1)))


def test_stderr_of_any_mean_is_the_sample_deviation_over_root_n():
    values = [0.0, 0.25, 1.0, 0.5, 0.75, 1.0]
    assert mean_stderr(values) == pytest.approx(statistics.stdev(values) / math.sqrt(len(values)))
    assert mean_stderr([1.0]) is None


TEXT_FIELDS = {  # file -> the record fields whose text a training document could copy
    "mmlu.jsonl": ("question", "choices"),
    "arc.jsonl": ("question", "choices"),
    "hellaswag.jsonl": ("ctx", "endings"),
    "gsm8k.jsonl": ("question", "answer"),
    "math.jsonl": ("problem", "solution", "answer"),
    "humaneval.jsonl": ("prompt", "canonical_solution", "test"),
    "mbpp.jsonl": ("text", "code", "test_list"),
    "ifeval.jsonl": ("prompt",),
}
EVALUATOR_OF = {"mmlu": "multiple_choice", "arc": "multiple_choice", "hellaswag": "multiple_choice"}
EVALUATOR_OF |= {"gsm8k": "exact_match", "math": "exact_match", "humaneval": "code", "mbpp": "code", "ifeval": "ifeval"}


def _leaves(value):
    if isinstance(value, dict):
        return _leaves(value.get("text", list(value.values())))
    return [s for v in value for s in _leaves(v)] if isinstance(value, list) else [str(value)]


@pytest.mark.parametrize("file", sorted(TEXT_FIELDS))
def test_items_hold_every_text_a_training_document_could_copy(file, fixtures):
    name = EVALUATOR_OF[file.removesuffix(".jsonl")]
    options = {"skip_unknown": True} if name == "ifeval" else {}
    items = list(get_registry().create("evaluators", name, file=str(fixtures / file), **options).items())
    records = [r for _, r in read_jsonl(fixtures / file)]
    if name == "ifeval":  # prompts without a checkable instruction are not evaluated, hence not items
        records = [r for r in records if any(i["text"] == r["prompt"] for i in items)]
    assert len(items) == len(records)
    for item, record in zip(items, records):
        for key in TEXT_FIELDS[file]:
            for text in _leaves(record.get(key, [])):
                assert text in item["text"], f"{file}: {key} {text!r} missing from item {item['id']}"


def test_a_multiple_choice_item_ends_with_its_gold_answer(fixtures):
    items = get_registry().create("evaluators", "multiple_choice", file=str(fixtures / "mmlu.jsonl")).items()
    assert next(iter(items))["text"] == "What is 7 * 8?\n54\n56\n58\n64\n56"


def test_curriculum_items_hold_the_question_and_its_answer():
    evaluator = get_registry().create("evaluators", "curriculum", count=3, max_digits=2)
    texts = [i["text"] for i in evaluator.items()]
    assert texts == [f"{p['query']}\n{p['answer']}" for p in evaluator.problems]


def test_lm_eval_items_hold_prompt_choices_and_the_gold_choice_text():
    pytest.importorskip("lm_eval")
    options = {"tasks": ["tiny_arithmetic_mc", "tiny_arithmetic_gen"], "include_path": "configs/tiny/lm_eval"}
    options["include_defaults"] = False
    items = {i["id"]: i["text"] for i in get_registry().create("evaluators", "lm_eval", **options).items()}
    assert len(items) == 32
    assert items["tiny_arithmetic_mc/0"] == "Compute 36 + 11.\nAnswer:\n37\n47\n49\n57\n47"  # gold index 1 -> "47"
    assert items["tiny_arithmetic_gen/0"].startswith("Question: Tom has 36 apples and gets 11 more.")

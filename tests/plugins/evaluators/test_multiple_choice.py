"""`multiple_choice`: prompts as documented, acc/acc_norm equal to a direct computation, file formats."""

from __future__ import annotations

import json
import math
import random

import pytest

from phijax.errors import PhijaxError
from phijax.plugins.registry import get_registry


def build(**options):
    return get_registry().create("evaluators", "multiple_choice", **options)


def rows(path):
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def random_scores(seed: int):
    """A fixed random log-likelihood per (context, continuation): any evaluator bug shows as a different score."""
    table: dict[tuple[str, str], float] = {}
    rng = random.Random(seed)

    def score(context: str, continuation: str) -> float:
        return table.setdefault((context, continuation), -rng.uniform(0.1, 20.0))

    return score, table


@pytest.mark.parametrize("seed", range(5))
def test_zero_shot_accuracy_equals_a_direct_computation(seed, fixtures, fake_policy):
    score, _ = random_scores(seed)
    result = build(file=str(fixtures / "mmlu.jsonl"))(fake_policy(score=score), seed=0)
    acc, acc_norm = [], []
    for row in rows(fixtures / "mmlu.jsonl"):  # the documented layout, written out by hand
        lls = [score(f"{row['question']}\nAnswer:", f" {c}") for c in row["choices"]]
        normed = [ll / len(f" {c}") for ll, c in zip(lls, row["choices"])]
        acc.append(float(lls.index(max(lls)) == row["answer"]))
        acc_norm.append(float(normed.index(max(normed)) == row["answer"]))
    assert result.metrics == {"acc": pytest.approx(sum(acc) / 5), "acc_norm": pytest.approx(sum(acc_norm) / 5)}
    p = sum(acc) / 5
    assert result.stderr["acc"] == pytest.approx(math.sqrt(p * (1 - p) / 4))
    assert [s["acc"] for s in result.samples] == acc


def test_two_shot_context_is_examples_separated_by_blank_lines_never_the_item_itself(fixtures, fake_policy):
    policy = fake_policy()
    build(file=str(fixtures / "mmlu.jsonl"), shots=2)(policy, seed=0)
    ((kind, requests, _),) = policy.calls
    assert kind == "loglikelihood" and len(requests) == 5 * 4
    first_context = requests[0][0]
    assert first_context == (
        "Which gas do plants absorb from the air for photosynthesis?\nAnswer: Carbon dioxide\n\n"
        "Which planet is closest to the Sun?\nAnswer: Mercury\n\n"
        "What is 7 * 8?\nAnswer:"
    )
    assert [r[1] for r in requests[:4]] == [" 54", " 56", " 58", " 64"]
    assert requests[4][0].startswith("What is 7 * 8?\nAnswer: 56\n\nWhich planet")


def test_fewshot_file_and_letter_templates(fixtures, fake_policy):
    policy = fake_policy(score=lambda c, x: 0.0 if x == " B" else -1.0)
    evaluator = build(
        file=str(fixtures / "mmlu.jsonl"),
        fewshot_file=str(fixtures / "arc.jsonl"),
        shots=1,
        template="{question}\n{choice_list}\nAnswer:",
        choice_template=" {label}",
        description="Answer with a letter.\n\n",
    )
    result = evaluator(policy, seed=0)
    context, continuation = policy.calls[0][1][0]
    assert context.startswith("Answer with a letter.\n\n")
    assert (
        "C. Planetary days will become shorter.\nD. Planetary gravity will become stronger.\nAnswer: C\n\nWhat is"
        in context
    )
    assert context.endswith("What is 7 * 8?\nA. 54\nB. 56\nC. 58\nD. 64\nAnswer:") and continuation == " A"
    assert result.metrics["acc"] == pytest.approx(2 / 5)  # gold is B for items 1 and 5


def test_acc_norm_divides_by_characters_and_can_disagree_with_acc(tmp_path, fake_policy):
    path = tmp_path / "mc.jsonl"
    path.write_text(json.dumps({"question": "q", "choices": ["short", "a much longer choice"], "answer": 1}) + "\n")
    lls = {" short": -3.0, " a much longer choice": -4.0}  # -0.5/char vs -0.19/char
    result = build(file=str(path))(fake_policy(score=lambda c, x: lls[x]), seed=0)
    assert result.metrics == {"acc": 0.0, "acc_norm": 1.0} and result.stderr == {}
    assert result.samples[0]["loglikelihoods"] == [-3.0, -4.0] and result.samples[0]["pred_norm"] == 1


def test_ties_go_to_the_first_choice(tmp_path, fake_policy):
    path = tmp_path / "mc.jsonl"
    path.write_text(
        json.dumps({"question": "q", "choices": ["x", "y"], "answer": 1})
        + "\n"
        + json.dumps({"question": "q", "choices": ["x", "y"], "answer": 0})
        + "\n"
    )
    result = build(file=str(path))(fake_policy(score=lambda c, x: -1.0), seed=0)
    assert [s["pred"] for s in result.samples] == [0, 0] and result.metrics["acc"] == 0.5


@pytest.mark.parametrize("name, golds", [("arc.jsonl", [2, 1, 0]), ("hellaswag.jsonl", [3, 0])])
def test_arc_labels_and_hellaswag_endings_are_read(name, golds, fixtures, fake_policy):
    evaluator = build(file=str(fixtures / name))
    assert [q.gold for q in evaluator.questions] == golds
    result = evaluator(fake_policy(), seed=0)
    assert len(result.samples) == len(golds)
    if name == "hellaswag.jsonl":
        assert policy_contexts(evaluator)[0] == "A man is sitting on a roof. He\nAnswer:"


def policy_contexts(evaluator):
    return [evaluator.context(q) for q in evaluator.questions]


def test_items_hold_question_every_choice_and_the_gold_answer(fixtures):
    items = list(build(file=str(fixtures / "arc.jsonl")).items())
    assert items[1] == {"id": "ARC_1", "text": "Which unit measures the mass of an apple?\nliter\ngram\nmeter\ngram"}


def test_limit_and_bad_templates(fixtures):
    assert len(build(file=str(fixtures / "mmlu.jsonl"), limit=2).questions) == 2
    with pytest.raises(PhijaxError, match=r"template placeholder \{topic\} is not known here"):
        build(file=str(fixtures / "mmlu.jsonl"), template="{topic}: {question}")
    assert (
        build(file=str(fixtures / "mmlu.jsonl"), template="{subject}: {question}").context(
            build(file=str(fixtures / "mmlu.jsonl")).questions[0]
        )
        == "elementary_mathematics: What is 7 * 8?"
    )
    with pytest.raises(PhijaxError, match=r"shots \(5\) must be between 0 and the 4 examples"):
        build(file=str(fixtures / "mmlu.jsonl"), shots=5)

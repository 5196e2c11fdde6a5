"""`multiple_choice`: log-likelihood scoring of each choice, k-shot, `acc` and `acc_norm`.

How a prompt is written (every piece is an option, so a run can match another harness exactly)::

    context      = description + (example + fewshot_separator) * shots + template(item)
    continuation = choice_template(item, choice i)        for each choice i
    example      = template(example) + choice_template(example, its gold choice)

Defaults: `template: "{question}\\nAnswer:"`, `choice_template: " {choice}"`, `fewshot_separator:
"\\n\\n"` (lm-evaluation-harness's MMLU/ARC-style defaults: a target delimiter of one space, examples
separated by a blank line). `template` may use `{question}`, `{choice_list}` (one `A. text` line per
choice) and any top-level field of the record (`{subject}`); `choice_template` may use `{choice}`,
`{label}` (A, B, ... or the file's own labels) and `{index}`. MMLU-style letters: `template:
"{question}\\n{choice_list}\\nAnswer:"`, `choice_template: " {label}"`.

`acc`: the choice with the highest summed log-likelihood is the gold one. `acc_norm`: the same after
dividing each log-likelihood by the continuation's length in characters (lm-eval's `acc_norm`).
Ties go to the first choice.

Files (field names detected, or set with `question_field`, `choices_field`, `answer_field`):
MMLU `{question, choices: [..], answer: 0-3}`; ARC `{question, choices: {text: [..], label: [..]},
answerKey: "A"}`; HellaSwag `{ctx, endings: [..], label: "0"-"3"}`; the answer may be an index, a
digit string, a label or a letter.
"""

from __future__ import annotations

import string
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from phijax_plugins.evaluators.base import (
    EvaluatorError,
    ItemFileOptions,
    check_capabilities,
    fewshot_examples,
    fewshot_prompt,
    field,
    fields_to_try,
    fill,
    item_id,
    make_options,
    read_items,
    summarise,
)

from phijax.plugins.protocols import LOGLIKELIHOOD, EvaluationResult, Record, TextPolicy

NAME = "multiple_choice"
QUESTION_FIELDS = ("question", "query", "ctx", "goal", "sentence")
CHOICES_FIELDS = ("choices", "endings", "options")
ANSWER_FIELDS = ("answer", "answerKey", "label", "gold")


@dataclass(frozen=True)
class MultipleChoiceOptions(ItemFileOptions):
    """The evaluator's options (its config entry); see the module docstring for the prompt layout."""

    template: str = "{question}\nAnswer:"
    choice_template: str = " {choice}"
    description: str = ""
    question_field: str | None = None
    choices_field: str | None = None
    answer_field: str | None = None


@dataclass(frozen=True)
class ChoiceItem:
    """One question: its choices, their labels and the index of the gold choice."""

    id: str
    question: str
    choices: tuple[str, ...]
    labels: tuple[str, ...]
    gold: int
    record: Record
    where: str


class MultipleChoice:
    """The `multiple_choice` evaluator (an `Evaluator`): reads the file when built, scores on call."""

    requires = frozenset({LOGLIKELIHOOD})

    def __init__(self, **options: Any) -> None:
        self.options: MultipleChoiceOptions = make_options(MultipleChoiceOptions, options, NAME)
        self.questions, self.pool = read_items(self.options, NAME, self._parse)
        self.context(self.questions[0])  # a bad template fails now, not after loading a model

    def items(self) -> Iterator[Record]:
        """Each question as `{id, text}`: the question, every choice and the gold answer, one per line.

        The gold choice comes last (again) so a copied "question ... answer" pair is still text of the item.
        """
        for q in self.questions:
            yield {"id": q.id, "text": "\n".join((q.question, *q.choices, q.choices[q.gold]))}

    def context(self, item: ChoiceItem) -> str:
        """The prompt that every choice of `item` continues: description, examples, the question."""
        o = self.options
        examples = [self.query(e) + self.continuation(e, e.gold) for e in fewshot_examples(self.pool, o.shots, item)]
        return fewshot_prompt(examples, self.query(item), o.fewshot_separator, o.description)

    def query(self, item: ChoiceItem) -> str:
        """`template` filled for `item`."""
        choice_list = "\n".join(f"{label}. {choice}" for label, choice in zip(item.labels, item.choices))
        values = {**item.record, "question": item.question, "choice_list": choice_list}
        return fill(self.options.template, values, item.where, "template")

    def continuation(self, item: ChoiceItem, index: int) -> str:
        """`choice_template` filled for choice `index` of `item`."""
        values = {"choice": item.choices[index], "label": item.labels[index], "index": index}
        return fill(self.options.choice_template, values, item.where, "choice_template")

    def __call__(self, policy: TextPolicy, *, seed: int = 0) -> EvaluationResult:
        """Score every choice of every question in one `policy.loglikelihood` call; `seed` is unused."""
        check_capabilities(policy, self.requires, NAME)
        contexts = [self.context(q) for q in self.questions]
        conts = [[self.continuation(q, i) for i in range(len(q.choices))] for q in self.questions]
        scores = policy.loglikelihood([(c, x) for c, xs in zip(contexts, conts) for x in xs])
        samples, at = [], 0
        for question, context, continuations in zip(self.questions, contexts, conts):
            part, at = scores[at : at + len(continuations)], at + len(continuations)
            samples.append(score_choices(question, context, continuations, part))
        metrics, stderr = summarise({m: [s[m] for s in samples] for m in ("acc", "acc_norm")})
        return EvaluationResult(metrics, stderr, samples)

    def _parse(self, record: Record, where: str) -> ChoiceItem:
        o = self.options
        question = field(record, fields_to_try(o.question_field, QUESTION_FIELDS), where, NAME, "question")
        choices, labels = _choices(
            field(record, fields_to_try(o.choices_field, CHOICES_FIELDS), where, NAME, "choices"), where
        )
        answer = field(record, fields_to_try(o.answer_field, ANSWER_FIELDS), where, NAME, "answer")
        return ChoiceItem(
            item_id(record, where), str(question), choices, labels, gold_index(answer, labels, where), record, where
        )


def score_choices(
    item: ChoiceItem, context: str, continuations: Sequence[str], scores: Sequence[tuple[float, bool]]
) -> Record:
    """The sample record of one question: log-likelihoods, predictions, `acc` and `acc_norm` (0 or 1)."""
    lls = [float(ll) for ll, _ in scores]
    normed = [ll / max(len(c), 1) for ll, c in zip(lls, continuations)]
    pred, pred_norm = _argmax(lls), _argmax(normed)
    return {
        "id": item.id,
        "context": context,
        "continuations": list(continuations),
        "loglikelihoods": lls,
        "is_greedy": [bool(g) for _, g in scores],
        "target": item.gold,
        "pred": pred,
        "pred_norm": pred_norm,
        "acc": float(pred == item.gold),
        "acc_norm": float(pred_norm == item.gold),
    }


def gold_index(answer: Any, labels: Sequence[str], where: str) -> int:
    """The gold choice's index from an index, a digit string, one of `labels` or a letter A, B, ..."""
    index = None
    if isinstance(answer, int) and not isinstance(answer, bool):
        index = answer
    elif isinstance(answer, str):
        text = answer.strip()
        if text in labels:
            index = list(labels).index(text)
        elif text.isdigit():
            index = int(text)
        elif len(text) == 1 and text.upper() in string.ascii_uppercase:
            index = string.ascii_uppercase.index(text.upper())
    if index is None or not 0 <= index < len(labels):
        raise EvaluatorError(
            f"{where}: answer {answer!r} names none of the {len(labels)} choices (labels "
            f"{', '.join(labels)}); give an index from 0, a digit string or a label"
        )
    return index


def _choices(value: Any, where: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(choices, labels) from a list of strings or ARC's `{text: [...], label: [...]}`."""
    labels = None
    if isinstance(value, dict):
        value, labels = value.get("text"), value.get("label")
    if not isinstance(value, list) or len(value) < 2 or not all(isinstance(c, (str, int, float)) for c in value):
        raise EvaluatorError(
            f"{where}: choices must be a list of at least two strings, or {{text: [...], label: [...]}}"
        )
    choices = tuple(str(c) for c in value)
    if labels is None:
        labels = list(string.ascii_uppercase[: len(choices)])
    if len(labels) != len(choices):
        raise EvaluatorError(f"{where}: {len(labels)} labels for {len(choices)} choices; give one label per choice")
    return choices, tuple(str(label) for label in labels)


def _argmax(values: Sequence[float]) -> int:
    """Index of the largest value; the first one on ties."""
    return max(range(len(values)), key=lambda i: (values[i], -i))

"""`exact_match`: generate an answer, extract its final answer, compare it with the reference.

Prompt (all options)::

    prompt  = description + (example + fewshot_separator) * shots + template(item)
    example = template(example) + target_template(example)

Defaults: `template: "Question: {question}\\nAnswer:"`, `target_template: " {solution}"`,
`fewshot_separator: "\\n\\n"`, `stop: ["Question:", "</s>", "<|im_end|>"]` (lm-eval's GSM8K layout);
for MATH write e.g. `template: "Problem:\\n{question}\\n\\nSolution:"`. Placeholders: `{question}`,
`{solution}`, `{answer}` and any top-level field of the record. `chat: true` sends each prompt as one
user turn in the policy's chat template (zero-shot chat evaluation of a final model).

The final answer of a generation is `phijax.verify.answers.extract_answer` (last `\\boxed{}`, else
`#### N`, else `Answer: ...`, else the last number) and is compared by `answers_match` (thousands
commas, units, `$`, `\\frac`/`\\dfrac`, `\\text{}`, trailing periods, exact rationals).

Files: GSM8K `{question, answer: "...#### 72"}`; MATH `{problem, solution: "...\\boxed{..}"}`, with a
bare `answer` beside `solution` taken as the reference when present (MATH-500).

Metrics: `exact_match` on the first sample; with `samples: k > 1` (temperature > 0) also `maj@k`, the
majority final answer (normalised; ties go to the answer seen first) against the reference.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from phijax_plugins.evaluators.base import (
    EvaluatorError,
    ItemFileOptions,
    check_capabilities,
    check_sampling,
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

from phijax.plugins.protocols import GENERATE, EvaluationResult, Record, TextPolicy
from phijax.verify.answers import answers_match, as_number, extract_answer, normalize_answer, reference_answer

NAME = "exact_match"
QUESTION_FIELDS = ("question", "problem", "query")
SOLUTION_FIELDS = ("solution", "answer")


@dataclass(frozen=True)
class ExactMatchOptions(ItemFileOptions):
    """The evaluator's options (its config entry); see the module docstring for the prompt layout."""

    template: str = "Question: {question}\nAnswer:"
    target_template: str = " {solution}"
    description: str = ""
    stop: tuple[str, ...] = ("Question:", "</s>", "<|im_end|>")
    chat: bool = False
    max_new_tokens: int = 512
    temperature: float = 0.0
    top_p: float = 1.0
    samples: int = 1
    question_field: str | None = None
    solution_field: str | None = None
    answer_field: str | None = None


@dataclass(frozen=True)
class Problem:
    """One problem: the question, the worked solution (for examples) and the reference final answer."""

    id: str
    question: str
    solution: str
    answer: str
    record: Record
    where: str


class ExactMatch:
    """The `exact_match` evaluator (an `Evaluator`): reads the file when built, generates on call."""

    requires = frozenset({GENERATE})

    def __init__(self, **options: Any) -> None:
        self.options: ExactMatchOptions = make_options(ExactMatchOptions, options, NAME)
        o = self.options
        if o.samples < 1 or o.max_new_tokens < 1:
            raise EvaluatorError(
                f"evaluator `{NAME}`: samples ({o.samples}) and max_new_tokens ({o.max_new_tokens}) must be at least 1"
            )
        check_sampling(NAME, o.samples, o.temperature, " (maj@k)")
        self.problems, self.pool = read_items(o, NAME, self._parse)
        self.prompt(self.problems[0])

    def items(self) -> Iterator[Record]:
        """Each problem as `{id, text}`: the question, its worked solution and (when the solution does
        not already hold it, as with MATH-500's separate `answer`) the final answer."""
        for p in self.problems:
            answer = "" if p.answer in p.solution else f"\n{p.answer}"
            yield {"id": p.id, "text": f"{p.question}\n{p.solution}{answer}"}

    def prompt(self, problem: Problem) -> str:
        """What the policy continues: description, worked examples, then the question."""
        o = self.options
        examples = [
            self._fill("template", e) + self._fill("target_template", e)
            for e in fewshot_examples(self.pool, o.shots, problem)
        ]
        return fewshot_prompt(examples, self._fill("template", problem), o.fewshot_separator, o.description)

    def __call__(self, policy: TextPolicy, *, seed: int = 0) -> EvaluationResult:
        """Generate `samples` completions of every prompt in one call, judge them, average."""
        check_capabilities(policy, self.requires, NAME)
        o = self.options
        prompts = [self.prompt(p) for p in self.problems]
        completions = policy.generate(
            prompts,
            max_new_tokens=o.max_new_tokens,
            temperature=o.temperature,
            top_p=o.top_p,
            num_samples=o.samples,
            stop=tuple(o.stop),
            seed=seed,
            chat=o.chat,
        )
        samples = [judge(p, prompt, texts) for p, prompt, texts in zip(self.problems, prompts, completions)]
        names = ["exact_match"] + ([f"maj@{o.samples}"] if o.samples > 1 else [])
        metrics, stderr = summarise({m: [s[m] for s in samples] for m in names})
        return EvaluationResult(metrics, stderr, samples)

    def _fill(self, option: str, p: Problem) -> str:
        values = {**p.record, "question": p.question, "solution": p.solution, "answer": p.answer}
        return fill(getattr(self.options, option), values, p.where, option)

    def _parse(self, record: Record, where: str) -> Problem:
        o = self.options
        question = field(record, fields_to_try(o.question_field, QUESTION_FIELDS), where, NAME, "question")
        solution = str(
            field(record, fields_to_try(o.solution_field, SOLUTION_FIELDS), where, NAME, "solution or answer")
        )
        if o.answer_field:
            answer = str(field(record, (o.answer_field,), where, NAME, "answer"))
        elif "solution" in record and record.get("answer") is not None:
            answer = str(record["answer"])  # MATH-500: a bare answer beside the worked solution
        else:
            answer = reference_answer(solution)
        return Problem(item_id(record, where), str(question), solution, answer, record, where)


def judge(problem: Problem, prompt: str, completions: Sequence[str]) -> Record:
    """The sample record of one problem: extracted answers, `exact_match` (first sample) and `maj@k`."""
    extracted = [extract_answer(c) for c in completions]
    record = {
        "id": problem.id,
        "prompt": prompt,
        "completions": list(completions),
        "extracted": extracted,
        "target": problem.answer,
        "exact_match": float(answers_match(extracted[0], problem.answer)),
    }
    if len(completions) > 1:
        vote = majority_answer(extracted)
        record["majority"] = vote
        record[f"maj@{len(completions)}"] = float(answers_match(vote, problem.answer))
    return record


def majority_answer(answers: Sequence[str | None]) -> str | None:
    """The most frequent final answer (equal after normalisation: `0.5` and `\\frac12` are one vote);
    ties go to the answer seen first; None answers do not vote; None when nothing voted."""
    keys = [None if a is None else _vote_key(a) for a in answers]
    counts = Counter(k for k in keys if k is not None)
    if not counts:
        return None
    best = max(counts.values())
    winner = next(k for k in keys if k is not None and counts[k] == best)
    return answers[keys.index(winner)]


def _vote_key(answer: str) -> Fraction | str:
    normal = normalize_answer(answer)
    number = as_number(normal)
    return number if number is not None else normal

"""`ifeval`: IFEval's verifiable instructions, scored by phijax's own checkers (no nltk download).

File: IFEval's JSONL, `{key, prompt, instruction_id_list: [..], kwargs: [{..}, ..]}` (one kwargs dict per
instruction; `null` values, as the published file pads them, are dropped). Each prompt is sent as one
chat turn (`chat: true`, the final model's zero-shot setting) and decoded greedily.

Metrics (lm-eval's names): `prompt_level_strict_acc` (every instruction of the prompt followed),
`inst_level_strict_acc` (share of all instructions followed), and the `loose` pair, where an instruction
counts as followed when any of eight variants of the response passes: the response, without its first
line, without its last line, without both, and each of those with every `*` removed.

The checkers are `phijax_plugins.evaluators.ifeval_checks.CHECKS`. An instruction id without a checker
(e.g. `language:response_language`) is an error naming file:line, unless `skip_unknown: true`, which
drops those instructions (and prompts left with none) and reports how many in `skipped_instructions`.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from phijax_plugins.evaluators.base import (
    EvaluatorError,
    check_capabilities,
    field,
    item_id,
    make_options,
    read_benchmark,
    summarise,
)
from phijax_plugins.evaluators.ifeval_checks import CHECKS, RELATIONS

from phijax.plugins.protocols import GENERATE, EvaluationResult, Record, TextPolicy

NAME = "ifeval"


@dataclass(frozen=True)
class IFEvalOptions:
    """The evaluator's options (its config entry)."""

    file: str
    limit: int | None = None
    chat: bool = True
    max_new_tokens: int = 1280
    skip_unknown: bool = False


@dataclass(frozen=True)
class Instruction:
    """One verifiable instruction of a prompt: its IFEval id and the checker's arguments."""

    id: str
    kwargs: dict[str, Any]

    def followed(self, response: str) -> bool:
        """Strict verdict: the checker accepts the response as it is."""
        return bool(response.strip()) and CHECKS[self.id](response, **self.kwargs)

    def loosely_followed(self, response: str) -> bool:
        """Loose verdict: the checker accepts one of the response's eight variants."""
        return any(self.followed(v) for v in loose_variants(response))


@dataclass(frozen=True)
class Prompt:
    """One IFEval prompt and its instructions."""

    id: str
    prompt: str
    instructions: tuple[Instruction, ...]
    skipped: int


def loose_variants(response: str) -> list[str]:
    """The response, without its first line, last line, or both; and each of those without `*`."""
    lines = response.split("\n")
    cut = [response, "\n".join(lines[1:]).strip(), "\n".join(lines[:-1]).strip(), "\n".join(lines[1:-1]).strip()]
    return cut + [v.replace("*", "") for v in cut]


class IFEval:
    """The `ifeval` evaluator (an `Evaluator`): reads and checks the file when built, generates on call."""

    requires = frozenset({GENERATE})

    def __init__(self, **options: Any) -> None:
        self.options: IFEvalOptions = make_options(IFEvalOptions, options, NAME)
        prompts = read_benchmark(self.options.file, NAME, self._parse, self.options.limit)
        self.prompts = [p for p in prompts if p.instructions]
        self.skipped = sum(p.skipped for p in prompts)
        if not self.prompts:
            raise EvaluatorError(
                f"`{NAME}` benchmark file {self.options.file}: no prompt has an instruction phijax can check"
            )

    def items(self) -> Iterator[Record]:
        """Each prompt as `{id, text}`."""
        for p in self.prompts:
            yield {"id": p.id, "text": p.prompt}

    def __call__(self, policy: TextPolicy, *, seed: int = 0) -> EvaluationResult:
        """Generate one greedy response per prompt and check every instruction, strictly and loosely."""
        check_capabilities(policy, self.requires, NAME)
        responses = policy.generate(
            [p.prompt for p in self.prompts],
            max_new_tokens=self.options.max_new_tokens,
            temperature=0.0,
            num_samples=1,
            seed=seed,
            chat=self.options.chat,
        )
        samples = [judge(p, texts[0]) for p, texts in zip(self.prompts, responses)]
        per_prompt = {f"prompt_level_{m}_acc": [float(all(s[m])) for s in samples] for m in ("strict", "loose")}
        per_inst = {f"inst_level_{m}_acc": [float(v) for s in samples for v in s[m]] for m in ("strict", "loose")}
        metrics, stderr = summarise(per_prompt | per_inst)
        metrics["skipped_instructions"] = float(self.skipped)
        return EvaluationResult(metrics, stderr, samples)

    def _parse(self, record: Record, where: str) -> Prompt:
        prompt = field(record, ("prompt",), where, NAME, "prompt")
        ids = field(record, ("instruction_id_list",), where, NAME, "instruction_id_list")
        kwargs = record.get("kwargs") or [{} for _ in ids]
        if not isinstance(ids, list) or not isinstance(kwargs, list) or len(kwargs) != len(ids):
            raise EvaluatorError(f"{where}: instruction_id_list and kwargs must be lists of the same length")
        instructions = [self._instruction(i, k, where) for i, k in zip(ids, kwargs)]
        kept = tuple(i for i in instructions if i is not None)
        return Prompt(item_id(record, where), str(prompt), kept, len(instructions) - len(kept))

    def _instruction(self, instruction_id: Any, kwargs: Any, where: str) -> Instruction | None:
        if instruction_id not in CHECKS:
            if self.options.skip_unknown:
                return None
            raise EvaluatorError(
                f"{where}: no checker for instruction `{instruction_id}` ({len(CHECKS)} are "
                "known, see ifeval_checks.CHECKS); set skip_unknown: true to drop it"
            )
        args = {k: v for k, v in (kwargs or {}).items() if v is not None}
        try:
            inspect.signature(CHECKS[instruction_id]).bind("response", **args)
        except TypeError as err:
            raise EvaluatorError(
                f"{where}: instruction `{instruction_id}` kwargs {sorted(args)} do not fit its checker ({err})"
            ) from None
        bad = [f"{k}: {v!r}" for k, v in args.items() if k.endswith("relation") and v not in RELATIONS]
        if bad:
            raise EvaluatorError(f"{where}: instruction `{instruction_id}` has {bad[0]}; use one of {RELATIONS}")
        return Instruction(instruction_id, args)


def judge(prompt: Prompt, response: str) -> Record:
    """The sample record of one prompt: strict and loose verdicts per instruction."""
    return {
        "id": prompt.id,
        "prompt": prompt.prompt,
        "response": response,
        "instruction_id_list": [i.id for i in prompt.instructions],
        "strict": [i.followed(response) for i in prompt.instructions],
        "loose": [i.loosely_followed(response) for i in prompt.instructions],
    }

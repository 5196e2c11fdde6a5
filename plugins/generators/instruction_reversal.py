"""`instruction_reversal`: code → the instruction that would produce it → code regenerated from it.

Phi-4 kept a pair only when the regenerated code is highly faithful to the original. Faithful here: when
the seed has `tests`, the regenerated code passes them in the sandbox (as the original must); otherwise
the normalised-token similarity of the two programs (identifiers, keywords and literals, comments and
layout dropped; `difflib` ratio of the token sequences) reaches `threshold`. Kept: `{prompt: instruction,
text: original code, regenerated, similarity}`. Rejections: `low_similarity`, `tests_failed`, `no_code`.
"""

from __future__ import annotations

import difflib
import io
import re
import tokenize
from collections.abc import Iterable, Iterator
from typing import Any

from phijax_plugins.generators.common import Sampling, check_keys, field_of, provenance, templates

from phijax.plugins.protocols import GENERATE
from phijax.synth import rejected

_FENCE = re.compile(r"```[\w+-]*\n(.*?)```", re.DOTALL)
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|\d+(?:\.\d+)?|\"[^\"]*\"|'[^']*'|[^\sA-Za-z0-9_]")


def code_block(text: str) -> str:
    """The last fenced code block of a reply, else the whole reply."""
    blocks = _FENCE.findall(text)
    return (blocks[-1] if blocks else text).strip()


def code_tokens(code: str) -> list[str]:
    """Python tokens without comments and layout (falls back to a regex tokenizer for other languages)."""
    skip = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT, tokenize.ENDMARKER}
    try:
        return [t.string for t in tokenize.generate_tokens(io.StringIO(code).readline) if t.type not in skip]
    except (tokenize.TokenError, IndentationError, SyntaxError):
        return _WORD.findall(re.sub(r"#[^\n]*|//[^\n]*", "", code))


def similarity(a: str, b: str) -> float:
    """Normalised-token similarity in [0, 1]: 1 for programs equal up to comments and layout."""
    ta, tb = code_tokens(a), code_tokens(b)
    if not ta and not tb:
        return 1.0
    return difflib.SequenceMatcher(None, ta, tb, autojunk=False).ratio()


class InstructionReversal:
    """Options: `threshold` (similarity in [0, 1]), `language`, `code_field`, `tests_field`, sandbox limits."""

    requires = frozenset({GENERATE})

    def __init__(
        self,
        threshold: float = 0.7,
        language: str = "python",
        code_field: str = "code",
        tests_field: str = "tests",
        timeout_s: float = 10.0,
        **options: Any,
    ):
        given = options.pop("templates", None)
        check_keys("instruction_reversal", threshold=(threshold, 0 <= threshold <= 1, "in [0, 1]"))
        self.threshold, self.language, self.timeout_s = threshold, language, timeout_s
        self.code_field, self.tests_field = code_field, tests_field
        self.sampling = Sampling("instruction_reversal", **options)
        self.templates = templates(
            "instruction_reversal",
            {"instruction": "reversal_instruction", "code": "reversal_code"},
            given,
            {"instruction": ("code", "language"), "code": ("instruction", "language")},
        )

    def __call__(self, seeds: Iterable[dict[str, Any]], *, policy: Any, seed: int) -> Iterator[dict[str, Any]]:
        t = self.templates
        for record in seeds:
            original = field_of(record, [self.code_field, "text"])
            if original is None:
                yield rejected("no_code")
                continue
            original = code_block(original)
            instruction = self.sampling.ask_one(
                policy, t["instruction"].render({"code": original, "language": self.language}), seed
            )
            regenerated = code_block(
                self.sampling.ask_one(
                    policy, t["code"].render({"instruction": instruction, "language": self.language}), seed + 1
                )
            )
            verdict = self._faithful(original, regenerated, record.get(self.tests_field))
            if isinstance(verdict, str):
                yield rejected(verdict)
                continue
            yield {
                "prompt": instruction,
                "text": original,
                "regenerated": regenerated,
                "similarity": verdict,
                **({"tests": record[self.tests_field]} if record.get(self.tests_field) else {}),
                **provenance(t["instruction"], t["code"]),
            }

    def _faithful(self, original: str, regenerated: str, tests: Any) -> float | str:
        """The similarity (1.0 when shared tests pass), or the rejection reason."""
        if tests:
            from phijax.verify.sandbox import SandboxLimits, run_python_tests

            source = tests if isinstance(tests, str) else "\n".join(tests)
            passed = run_python_tests(regenerated, source, SandboxLimits(timeout_s=self.timeout_s)).passed
            return 1.0 if passed else "tests_failed"
        score = similarity(original, regenerated)
        return round(score, 4) if score >= self.threshold else "low_similarity"

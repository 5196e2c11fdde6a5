"""`seed_curation`: passages and code snippets cut from documents, kept when the model rates them highly.

Phi-4's seeds were picked for depth of reasoning and teaching value. A document (`text`, or `code`) is
cut into passages of at most `chunk_chars` (paragraphs packed together; code cut at top-level `def` /
`class`), each scored 1–5 for `reasoning` and `educational` value against the rubric in the template,
and kept when the mean reaches `threshold`. Rejections: `too_short`, `unscored`, `low_score`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Any

from phijax_plugins.generators.common import Sampling, check_keys, parse_scores, provenance, templates

from phijax.plugins.protocols import GENERATE
from phijax.synth import rejected

RUBRIC = ("reasoning", "educational")
_TOP_LEVEL = re.compile(r"^(?=(?:async\s+def|def|class)\s)", re.MULTILINE)


def cut_passages(text: str, chunk_chars: int, code: bool) -> list[str]:
    """Passages of at most ~`chunk_chars`: code at top-level definitions, prose at blank lines, packed."""
    pieces = _TOP_LEVEL.split(text) if code else re.split(r"\n\s*\n", text)
    out: list[str] = []
    for piece in (p.strip() for p in pieces):
        if not piece:
            continue
        if out and len(out[-1]) + len(piece) + 2 <= chunk_chars:
            out[-1] += "\n\n" + piece
        else:
            out.extend(piece[i : i + chunk_chars] for i in range(0, len(piece), chunk_chars))
    return out


class SeedCuration:
    """Cut each document into passages, score them, keep the good ones as `{text, kind, scores}`."""

    requires = frozenset({GENERATE})

    def __init__(self, threshold: float = 3.5, chunk_chars: int = 1500, min_chars: int = 200, **sampling: Any):
        given = sampling.pop("templates", None)
        check_keys(
            "seed_curation",
            threshold=(threshold, 1 <= threshold <= 5, "in [1, 5]"),
            chunk_chars=(chunk_chars, chunk_chars >= min_chars >= 1, ">= min_chars >= 1"),
        )
        self.threshold, self.chunk_chars, self.min_chars = threshold, chunk_chars, min_chars
        self.sampling = Sampling("seed_curation", **{"max_new_tokens": 16, "temperature": 0.0, **sampling})
        self.templates = templates("seed_curation", {"score": "curation_score"}, given, {"score": ("kind", "passage")})

    def __call__(self, seeds: Iterable[dict[str, Any]], *, policy: Any, seed: int) -> Iterator[dict[str, Any]]:
        score = self.templates["score"]
        for record in seeds:
            code = isinstance(record.get("code"), str)
            text = record["code"] if code else str(record.get("text", ""))
            kind = "code snippet" if code else "passage"
            passages = [p for p in cut_passages(text, self.chunk_chars, code) if len(p) >= self.min_chars]
            if not passages:
                yield rejected("too_short")
                continue
            prompts = [score.render({"kind": kind, "passage": p}) for p in passages]
            for i, (passage, answer) in enumerate(zip(passages, self.sampling.ask(policy, prompts, seed), strict=True)):
                scores = parse_scores(answer[0], RUBRIC)
                if scores is None:
                    yield rejected("unscored")
                elif sum(scores.values()) / len(scores) < self.threshold:
                    yield rejected("low_score")
                else:
                    yield {
                        "code" if code else "text": passage,
                        "kind": kind,
                        "scores": scores,
                        **provenance(score, sample_index=i),
                    }

"""`rewrite`: a seed rewritten into exercises, discussions or structured reasoning tasks, by plan then write.

Multi-step prompting (Phi-4's "several prompted roles in turn"): a teacher prompt plans the piece from
the seed, a second prompt writes it from the plan with the seed for facts. One record per seed and
`forms` entry: `{text, form}`. Rejection: `empty` (a plan or text the model left blank).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from phijax_plugins.generators.common import Sampling, check_keys, field_of, provenance, templates

from phijax.plugins.protocols import GENERATE
from phijax.synth import rejected


class Rewrite:
    """`forms`: what to write from each seed, e.g. [exercise, discussion, structured reasoning task]."""

    requires = frozenset({GENERATE})

    def __init__(
        self,
        forms: list[str] | tuple[str, ...] = ("exercise", "discussion", "structured reasoning task"),
        seed_fields: tuple[str, ...] | list[str] = ("text", "code"),
        **options: Any,
    ):
        given = options.pop("templates", None)
        check_keys(
            "rewrite",
            forms=(forms, bool(forms) and all(isinstance(f, str) for f in forms), "a non-empty list of words"),
        )
        self.forms, self.seed_fields = list(forms), list(seed_fields)
        self.sampling = Sampling("rewrite", **options)
        self.templates = templates(
            "rewrite",
            {"plan": "rewrite_plan", "write": "rewrite_write"},
            given,
            {"plan": ("seed", "form"), "write": ("seed", "form", "plan")},
        )

    def __call__(self, seeds: Iterable[dict[str, Any]], *, policy: Any, seed: int) -> Iterator[dict[str, Any]]:
        plan_t, write_t = self.templates["plan"], self.templates["write"]
        for record in seeds:
            source = field_of(record, self.seed_fields)
            if source is None:
                yield rejected("no_seed_text")
                continue
            plans = self.sampling.ask(policy, [plan_t.render({"seed": source, "form": f}) for f in self.forms], seed)
            writes = [
                write_t.render({"seed": source, "form": f, "plan": p[0].strip()})
                for f, p in zip(self.forms, plans, strict=True)
            ]
            texts = self.sampling.ask(policy, writes, seed + 1)
            for i, (form, plan, text) in enumerate(zip(self.forms, plans, texts, strict=True)):
                if not plan[0].strip() or not text[0].strip():
                    yield rejected("empty")
                else:
                    yield {"text": text[0].strip(), "form": form, **provenance(plan_t, write_t, sample_index=i)}

"""What the built-in generators share: options, templates, asking the policy, reading scores.

Each generator is a class built from a stage's options (`factory(**options)`); it loads and checks its
templates in `__init__` (so a bad template stops the run before anything is spent) and, called as
`gen(seeds, *, policy, seed)`, yields records, or `phijax.synth.rejected(reason)` markers for what it
drops. Records carry `_provenance` (template hash, sample index), which the stage runner merges.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from phijax.synth import PROVENANCE, SynthError
from phijax.synth.templates import Template, load_template

TEMPLATES = Path(__file__).parent / "templates"

_SCORE = re.compile(r"^\W*([A-Za-z][A-Za-z _-]*?)\W*[:=]\W*([0-9]+(?:\.[0-9]+)?)", re.MULTILINE)


class Sampling:
    """The sampling options every generator takes: `max_new_tokens`, `temperature`, `top_p`."""

    def __init__(self, name: str, max_new_tokens: int = 512, temperature: float = 0.7, top_p: float = 1.0):
        if max_new_tokens < 1 or temperature < 0 or not 0 < top_p <= 1:
            raise SynthError(
                f"{name}: max_new_tokens must be >= 1, temperature >= 0 and 0 < top_p <= 1; fix the stage options"
            )
        self.max_new_tokens, self.temperature, self.top_p = max_new_tokens, temperature, top_p

    def ask(
        self,
        policy: Any,
        prompts: Sequence[str],
        seed: int,
        *,
        num_samples: int = 1,
        max_new_tokens: int | None = None,
        temperature: float | None = None,
    ) -> list[list[str]]:
        """`num_samples` completions per prompt, chat-templated, with this stage's sampling."""
        return policy.generate(
            list(prompts),
            max_new_tokens=max_new_tokens or self.max_new_tokens,
            temperature=self.temperature if temperature is None else temperature,
            top_p=self.top_p,
            num_samples=num_samples,
            seed=seed,
        )

    def ask_one(self, policy: Any, prompt: str, seed: int, **kw: Any) -> str:
        """One completion of one prompt, stripped."""
        return self.ask(policy, [prompt], seed, **kw)[0][0].strip()


def templates(
    name: str, defaults: Mapping[str, str], given: Mapping[str, str] | None, slots: Mapping[str, Iterable[str]]
) -> dict[str, Template]:
    """The generator's templates by role: built-in `defaults`, overridden by the stage's `templates:` paths."""
    given = dict(given or {})
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        raise SynthError(
            f"{name}: unknown template role {unknown[0]!r} (roles: {', '.join(defaults)}); "
            f"fix the stage's `templates` option"
        )
    return {role: load_template(given.get(role, spec), slots[role], TEMPLATES) for role, spec in defaults.items()}


def provenance(*used: Template, sample_index: int = 0, **extra: Any) -> dict[str, Any]:
    """The `_provenance` entry of a record: the hash of the templates that made it, and its sample index."""
    return {PROVENANCE: {"template_hash": "+".join(t.hash for t in used), "sample_index": sample_index, **extra}}


def field_of(record: Mapping[str, Any], names: Sequence[str]) -> str | None:
    """The first non-empty string among `record[name]`, or None."""
    for name in names:
        value = record.get(name)
        if isinstance(value, str) and value.strip():
            return value
    return None


def parse_scores(text: str, keys: Sequence[str]) -> dict[str, float] | None:
    """`{key: score}` from lines such as `Reasoning: 4` or `factual accuracy = 3.5`; None if a key is missing."""
    found: dict[str, float] = {}
    for label, value in _SCORE.findall(text):
        key = re.sub(r"[^a-z]+", "_", label.strip().lower()).strip("_")
        found.setdefault(key, float(value))
    return {k: found[k] for k in keys} if all(k in found for k in keys) else None


def check_keys(name: str, **values: Any) -> None:
    """One line for an option outside its range: `check_keys('x', threshold=(t, 0 <= t <= 1, 'in [0, 1]'))`."""
    for key, (value, ok, what) in values.items():
        if not ok:
            raise SynthError(f"{name}: option {key}={value!r} must be {what}; fix the stage options")

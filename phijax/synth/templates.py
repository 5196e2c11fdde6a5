"""Prompt templates: text files with `{{variable}}` slots, built in or overridden by path.

Why `{{name}}` and not `str.format`: seeds are code and maths full of single braces, which must pass
through untouched. A built-in template is named by its file stem in the folder its plugin passes (the
built-in generators': `plugins/generators/templates/`); a user overrides it by giving a path instead.
Every problem is one `SynthError` line naming the template and the fix, raised when the generator is
built (before anything is spent).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from phijax.config.loader import relative_note
from phijax.synth import SynthError

_SLOT = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


@dataclass(frozen=True)
class Template:
    """One prompt template: its text, where it came from, and a content hash for provenance."""

    text: str
    source: str

    @property
    def variables(self) -> frozenset[str]:
        """The slot names the text uses."""
        return frozenset(_SLOT.findall(self.text))

    @property
    def hash(self) -> str:
        """sha256 of the text (16 hex digits): two runs used the same prompt iff the hashes agree."""
        return hashlib.sha256(self.text.encode()).hexdigest()[:16]

    def check(self, provided: Iterable[str]) -> Template:
        """Raise one line if the text uses a slot the generator does not fill; return self."""
        unknown = sorted(self.variables - set(provided))
        if unknown:
            raise SynthError(
                f"template {self.source} uses {{{{{unknown[0]}}}}}, which this generator does not fill "
                f"(it fills: {', '.join(sorted(provided))}); fix the template"
            )
        return self

    def render(self, values: Mapping[str, object]) -> str:
        """The text with every `{{name}}` replaced by `str(values[name])`; a missing value is one error line."""

        def fill(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in values:
                raise SynthError(
                    f"template {self.source}: missing variable {{{{{name}}}}} "
                    f"(have: {', '.join(sorted(values))}); fill it or remove it from the template"
                )
            return str(values[name])

        return _SLOT.sub(fill, self.text)


def load_template(spec: str, provided: Iterable[str], builtin: Path) -> Template:
    """A template by name from the folder `builtin` (a plugin's own, e.g. `rewrite_plan`) or a user's file by path,
    checked against the `provided` slots."""
    path = Path(spec) if ("/" in spec or spec.endswith(".txt")) else builtin / f"{spec}.txt"
    if not path.is_file():
        known = sorted(p.stem for p in builtin.glob("*.txt"))
        raise SynthError(
            f"template {spec!r} not found (looked for {path}{relative_note(path)}); "
            f"give a file path or one of: {', '.join(known)}"
        )
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise SynthError(f"template {path} cannot be read ({type(err).__name__}); fix the file") from None
    return Template(text, str(path)).check(provided)

"""`to_chat`: a stage's records as SFT chat records (`messages`), no model needed.

The user turn is the first non-empty `user_fields` entry (`prompt`, `question`, `instruction`), the
assistant turn the first `assistant_fields` entry (`text`, `response`, `answer`); an optional `system`
message comes first. Rejection: `missing_field` (a record without one of the two turns).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from phijax_plugins.generators.common import field_of

from phijax.synth import rejected


class ToChat:
    """Options: `user_fields`, `assistant_fields`, `system` (text or null)."""

    requires: frozenset[str] = frozenset()

    def __init__(
        self,
        user_fields: list[str] | tuple[str, ...] = ("prompt", "question", "instruction"),
        assistant_fields: list[str] | tuple[str, ...] = ("text", "response", "answer"),
        system: str | None = None,
    ):
        self.user_fields, self.assistant_fields, self.system = list(user_fields), list(assistant_fields), system

    def __call__(
        self, seeds: Iterable[dict[str, Any]], *, policy: Any = None, seed: int = 0
    ) -> Iterator[dict[str, Any]]:
        for record in seeds:
            user, assistant = field_of(record, self.user_fields), field_of(record, self.assistant_fields)
            if user is None or assistant is None or user == assistant:
                yield rejected("missing_field")
                continue
            system = [{"role": "system", "content": self.system}] if self.system else []
            yield {
                "messages": [*system, {"role": "user", "content": user}, {"role": "assistant", "content": assistant}],
                "provenance": record.get("provenance"),
            }

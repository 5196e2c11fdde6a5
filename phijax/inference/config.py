"""`policy:` in a command's config: which backend makes the policy, from what (pure: no jax).

    policy: {backend: local, checkpoint: runs/sft, tokenizer: phi4, batch_size: 32}

`backend` names a registered backend (`phijax_register_backends`); `checkpoint` and `tokenizer` are
named alike in every command; any other key is passed to the backend's factory.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class PolicySpec:
    """The model a command samples from or scores: a backend and its options."""

    backend: str = field(default="local", metadata={"help": "registered backend (`phijax plugins` lists them)"})
    checkpoint: str | None = field(
        default=None,
        metadata={"help": "model dir, checkpoint step, run dir (its newest step) or Hugging Face model directory"},
    )
    tokenizer: str | None = field(
        default=None, metadata={"help": "tokenizer.json, HF directory or `phi4` (null: found beside the checkpoint)"}
    )
    options: dict[str, Any] = field(
        default_factory=dict, metadata={"rest": True, "help": "other keys: the backend factory's options"}
    )

    def factory_options(self) -> dict[str, Any]:
        """Keyword arguments of the backend factory: checkpoint, tokenizer (when set) and the options."""
        named = {"checkpoint": self.checkpoint, "tokenizer": self.tokenizer}
        return {**{k: v for k, v in named.items() if v is not None}, **self.options}

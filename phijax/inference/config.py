"""`policy:` in a command's config, and `phijax generate`'s config root (pure: no jax).

    policy: {backend: local, checkpoint: runs/sft, tokenizer: phi4, batch_size: 32}

`backend` names a registered backend (`phijax_register_backends`); `checkpoint` and `tokenizer` are
named alike in every command; any other key is passed to the backend's factory. `GenerateJob` names
its policy the same way, with the prompts and sampling settings of `phijax generate`:

    policy: {backend: local, checkpoint: runs/tiny-pretrain}
    prompt: "Exercise. What is 12 + 30?"
    raw: true
    temperature: 0
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from phijax.config.loader import key, section
from phijax.errors import ConfigError
from phijax.parallel.config import MeshConfig


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


@dataclass(frozen=True)
class GenerateJob:
    """`phijax generate`: sample replies of a policy to one or more prompts and print them.

    Every `phijax generate` flag is a shorthand for one of these keys (`--n` for `num_samples`).
    """

    policy: PolicySpec = section(PolicySpec, "the policy sampled (see PolicySpec); --checkpoint, --tokenizer")
    mesh: MeshConfig = section(MeshConfig, "devices the policy is sharded over (default: fsdp over all)")
    seed: int = key(0, "sampling seed: the same seed, prompt and settings give the same replies (--seed)")
    prompt: str | None = key(None, "the one prompt (shorthand for a one-element `prompts`; --prompt)")
    prompts: tuple[str, ...] = key((), "prompts, each answered num_samples times (--prompt, repeated)")
    raw: bool = key(False, "no chat template: continue each prompt as plain text (pretrained models; --raw)")
    max_new_tokens: int = key(256, "longest reply, in tokens (--max-new-tokens)")
    temperature: float = key(0.7, "sampling temperature; 0 = greedy (--temperature)")
    top_k: int = key(0, "sample among the k most likely tokens; 0 = off (--top-k; token-level backends)")
    top_p: float = key(1.0, "sample among the most likely tokens holding this probability mass; 1 = off (--top-p)")
    num_samples: int = key(1, "replies per prompt, sampled from one prefill (--n)")
    stop: tuple[str, ...] = key((), "strings that end a reply, cut before the first; the model's stop tokens always do")

    def __post_init__(self) -> None:
        if self.prompt is not None and self.prompts:
            raise ConfigError("set either `prompt` or `prompts`, not both: clear one, e.g. prompt=null")
        if not self.all_prompts:
            raise ConfigError('no prompt: pass --prompt "..." (or set `prompt: ...` in the config)')
        if self.policy.backend == "local" and not self.policy.checkpoint:
            raise ConfigError(
                "policy.checkpoint is not set: pass --checkpoint RUN (a run dir, checkpoint step, model dir "
                "or HF directory), e.g. --checkpoint runs/tiny-pretrain"
            )
        _check(self.max_new_tokens >= 1, f"max_new_tokens is {self.max_new_tokens}: use at least 1")
        _check(self.num_samples >= 1, f"num_samples is {self.num_samples}: use at least 1 reply per prompt")
        _check(self.temperature >= 0, f"temperature is {self.temperature}: use 0 (greedy) or more")
        _check(0 < self.top_p <= 1, f"top_p is {self.top_p}: use a value in (0, 1], 1 for off")
        _check(self.top_k >= 0, f"top_k is {self.top_k}: use a positive count, or 0 for off")

    @property
    def all_prompts(self) -> tuple[str, ...]:
        """`prompts`, or the one `prompt`."""
        return self.prompts or ((self.prompt,) if self.prompt is not None else ())


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)

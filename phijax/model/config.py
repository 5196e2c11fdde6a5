"""The decoder's configuration (`model:` in every config) and the named presets of its size.

Pure: no jax, so a config can be validated before anything heavy is imported. Defaults are
microsoft/phi-4 (docs/phi4-recipe.md § Architecture). Proportions kept from phi-4 in the small presets:
head_dim 128 (tiny: 16), 4 query heads per KV head, SwiGLU width 3.5x the hidden size, RMSNorm eps 1e-5,
untied embeddings.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from phijax.config.loader import key
from phijax.errors import ConfigError


@dataclass(frozen=True)
class ModelConfig:
    """Architecture and numerics of the decoder. `preset` names a set of values; keys beside it override them."""

    preset: str | None = key(None, "named architecture (phi4-14b, phi4-1b, phi4-100m, tiny); other keys override it")
    vocab_size: int = key(100_352, "rows of the embedding and LM head (phi-4: 100,352, cl100k_base padded)")
    hidden_size: int = key(5120, "width of the residual stream")
    num_layers: int = key(40, "decoder layers")
    num_heads: int = key(40, "query heads")
    num_kv_heads: int = key(10, "key/value heads (grouped-query attention); divides num_heads")
    head_dim: int = key(128, "width of one attention head (even: RoPE rotates pairs)")
    intermediate_size: int = key(17_920, "SwiGLU hidden width")
    rms_norm_eps: float = key(1e-5, "epsilon of every RMSNorm")
    rope_theta: float = key(10_000.0, "RoPE base: 10,000 in pretraining, 250,000 from midtraining on")
    max_seq_len: int = key(16_384, "longest sequence the model serves (generation's cache bound)")
    bos_token_id: int = key(100_257, "beginning-of-text id (phi-4: <|endoftext|>)")
    eos_token_id: int = key(100_265, "end-of-turn id that stops generation (phi-4: <|im_end|>)")
    pad_token_id: int = key(100_349, "padding id (phi-4: <|dummy_85|>)")
    param_dtype: Literal["float32", "bfloat16"] = key("float32", "dtype parameters are stored in")
    compute_dtype: Literal["float32", "bfloat16", "float16"] = key("float32", "dtype of matmuls and activations")
    attention: Literal["xla", "cudnn", "splash"] = key(
        "xla", "xla (portable), cudnn (GPU flash attention) or splash (TPU Pallas kernel; seq_len a multiple of 128)"
    )
    remat: Literal["none", "full", "dots", "dots_no_batch"] = key(
        "none", "activations a layer keeps for the backward pass (phijax.model.phi4.REMAT_POLICIES)"
    )
    scan_layers: bool = key(True, "scan the layers (compile time flat in depth); checkpoints do not depend on it")

    @classmethod
    def expand_preset(cls, raw: Mapping[str, Any]) -> dict[str, Any]:
        """The raw `model:` keys with the named preset's values beneath them (the config loader calls this)."""
        if raw.get("preset") is None:
            return dict(raw)
        return {**preset_values(raw["preset"]), **raw}

    def __post_init__(self) -> None:
        if self.num_heads % self.num_kv_heads:
            raise ConfigError(
                f"model.num_heads ({self.num_heads}) must be a multiple of model.num_kv_heads "
                f"({self.num_kv_heads}); pick num_kv_heads from its divisors"
            )
        if self.head_dim % 2:
            raise ConfigError(f"model.head_dim ({self.head_dim}) must be even for RoPE")


PRESETS: dict[str, dict[str, Any]] = {
    # microsoft/phi-4: 14,659,507,200 parameters.
    "phi4-14b": dict(
        vocab_size=100_352,
        hidden_size=5120,
        num_layers=40,
        num_heads=40,
        num_kv_heads=10,
        head_dim=128,
        intermediate_size=17_920,
        rope_theta=250_000.0,
        max_seq_len=16_384,
    ),
    # ~1.07B: a single-GPU stand-in for experiments at real vocabulary size.
    "phi4-1b": dict(
        vocab_size=100_352,
        hidden_size=2048,
        num_layers=12,
        num_heads=16,
        num_kv_heads=4,
        head_dim=128,
        intermediate_size=7168,
        rope_theta=10_000.0,
        max_seq_len=4096,
    ),
    # ~123M, of which the 100,352-wide embedding and LM head are 103M.
    "phi4-100m": dict(
        vocab_size=100_352,
        hidden_size=512,
        num_layers=6,
        num_heads=4,
        num_kv_heads=1,
        head_dim=128,
        intermediate_size=1792,
        rope_theta=10_000.0,
        max_seq_len=4096,
    ),
    # For tests and the CPU main job; its vocabulary is the small BPE shipped in configs/tiny/.
    "tiny": dict(
        vocab_size=1024,
        hidden_size=128,
        num_layers=2,
        num_heads=8,
        num_kv_heads=2,
        head_dim=16,
        intermediate_size=448,
        rope_theta=10_000.0,
        max_seq_len=1024,
        bos_token_id=0,
        eos_token_id=1,
        pad_token_id=2,
    ),
}


def preset_values(name: str) -> dict[str, Any]:
    """The `model` config keys a preset sets; KeyError with a suggestion for an unknown name."""
    if name not in PRESETS:
        close = difflib.get_close_matches(name, PRESETS, n=1)
        hint = f"; did you mean `{close[0]}`?" if close else ""
        raise KeyError(f"unknown model preset `{name}` (known: {', '.join(PRESETS)}){hint}")
    return dict(PRESETS[name])


def preset_config(name: str, **overrides: Any) -> ModelConfig:
    """A `ModelConfig` for a preset, with keyword overrides."""
    return ModelConfig(preset=name, **{**preset_values(name), **overrides})

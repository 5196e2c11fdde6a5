"""Named model architectures: the exact phi-4 and smaller models with its proportions.

Proportions kept from phi-4 in the small presets: head_dim 128 (tiny: 16), 4 query heads per KV head,
SwiGLU width 3.5x the hidden size, RMSNorm eps 1e-5, untied embeddings.
"""

from __future__ import annotations

import difflib
from typing import Any

from phijax.config import ModelConfig

PRESETS: dict[str, dict[str, Any]] = {
    # microsoft/phi-4: 14,659,507,200 parameters.
    "phi4-14b": dict(
        vocab_size=100_352, hidden_size=5120, num_layers=40, num_heads=40, num_kv_heads=10,
        head_dim=128, intermediate_size=17_920, rope_theta=250_000.0, max_seq_len=16_384,
    ),
    # ~1.07B: a single-GPU stand-in for experiments at real vocabulary size.
    "phi4-1b": dict(
        vocab_size=100_352, hidden_size=2048, num_layers=12, num_heads=16, num_kv_heads=4,
        head_dim=128, intermediate_size=7168, rope_theta=10_000.0, max_seq_len=4096,
    ),
    # ~123M, of which the 100,352-wide embedding and LM head are 103M.
    "phi4-100m": dict(
        vocab_size=100_352, hidden_size=512, num_layers=6, num_heads=4, num_kv_heads=1,
        head_dim=128, intermediate_size=1792, rope_theta=10_000.0, max_seq_len=4096,
    ),
    # For tests and the CPU main job; its vocabulary is the small BPE shipped in configs/tiny/.
    "tiny": dict(
        vocab_size=1024, hidden_size=128, num_layers=2, num_heads=8, num_kv_heads=2,
        head_dim=16, intermediate_size=448, rope_theta=10_000.0, max_seq_len=1024,
        bos_token_id=0, eos_token_id=1, pad_token_id=2,
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

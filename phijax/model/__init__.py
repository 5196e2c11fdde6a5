"""The Phi-4 decoder: `Phi4` (Flax NNX), its config and presets, and HF interop (`load_hf`, `save_hf`).

A lazy namespace: importing `phijax.model` (or `phijax.model.config`) does not import jax.
"""

from __future__ import annotations

from phijax.lazy import lazy_attributes

_LAZY = {
    "Phi4": "phijax.model.phi4",
    "load_hf": "phijax.model.hf",
    "save_hf": "phijax.model.hf",
    "ModelConfig": "phijax.model.config",
    "preset_config": "phijax.model.config",
}
__all__ = list(_LAZY)

__getattr__ = lazy_attributes(__name__, _LAZY)

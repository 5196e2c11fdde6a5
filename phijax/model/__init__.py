"""The Phi-4 model: layers, presets, HF interop and model directories."""

from phijax.model.hf import load_hf, save_hf
from phijax.model.phi4 import Phi4

__all__ = ["Phi4", "load_hf", "save_hf"]

"""`phijax convert`: HF `Phi3ForCausalLM` directories ↔ phijax model directories."""

from __future__ import annotations

from pathlib import Path

import jax
import numpy as np

from phijax.model.checkpoint import load_model_dir, nest, save_model_dir
from phijax.model.hf import read_hf_config, read_hf_params, save_hf


def hf_to_checkpoint(src: str | Path, dst: str | Path) -> Path:
    """Stream a HF checkpoint into a model directory, keeping the file's dtype (one copy in memory)."""
    cfg = read_hf_config(src)
    return save_model_dir(nest(_as_jax_arrays(read_hf_params(src, cfg))), cfg, dst)


def checkpoint_to_hf(src: str | Path, dst: str | Path) -> Path:
    """Write a model directory (or a training checkpoint step) as a HF directory."""
    return save_hf(load_model_dir(src), dst)


def _as_jax_arrays(flat: dict[str, np.ndarray]) -> dict[str, jax.Array]:
    """Hand each array to jax one at a time, dropping the numpy array as soon as jax owns the data.

    orbax serialises jax arrays from their own buffers but copies numpy arrays first, which would
    double the host memory of a conversion. `device_put` of a contiguous host array can alias its
    memory; waiting for each transfer keeps at most one array in flight.
    """
    out = {}
    for name in list(flat):
        array = flat.pop(name)
        out[name] = jax.device_put(np.ascontiguousarray(array)).block_until_ready()
        del array
    return out

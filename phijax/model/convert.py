"""`phijax convert`: HF `Phi3ForCausalLM` directories ↔ phijax model directories."""

from __future__ import annotations

import logging
from pathlib import Path

import jax
import numpy as np

from phijax.data.hf_tokenizer import write_hf_tokenizer
from phijax.data.tokenizer import load_tokenizer
from phijax.errors import PhijaxError
from phijax.model.checkpoint import find_tokenizer, load_model_dir, load_newest_intact, nest, save_model_dir
from phijax.model.hf import read_hf_config, read_hf_params, save_hf

log = logging.getLogger(__name__)


def hf_to_checkpoint(src: str | Path, dst: str | Path) -> Path:
    """Stream a HF checkpoint into a model directory, keeping the file's dtype (one copy in memory)."""
    cfg = read_hf_config(src)
    return save_model_dir(nest(_as_jax_arrays(read_hf_params(src, cfg))), cfg, dst)


def checkpoint_to_hf(src: str | Path, dst: str | Path) -> Path:
    """Write a model directory, checkpoint step or run directory (its newest intact step) as a HF directory,
    with the model's tokenizer files so `AutoTokenizer` and `pipeline` load it."""
    model, source = load_newest_intact(src, lambda s: load_model_dir(s.path))
    out = save_hf(model, dst)
    cfg = model.cfg
    try:
        tokenizer = load_tokenizer(find_tokenizer(source, cfg.vocab_size))
    except PhijaxError as err:
        log.warning("wrote the weights without a tokenizer: %s", err)
        return out
    write_hf_tokenizer(
        tokenizer,
        out,
        bos_id=cfg.bos_token_id,
        eos_id=cfg.eos_token_id,
        pad_id=cfg.pad_token_id,
        max_len=cfg.max_seq_len,
    )
    return out


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

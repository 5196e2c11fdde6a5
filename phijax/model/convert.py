"""`phijax convert`: HF `Phi3ForCausalLM` directories ↔ phijax model directories.

The output directory is checked before any weights are read: one that exists with files in it, or one
that cannot be written (a read-only file system, no permission; or its nearest existing parent, for a
new one), ends the conversion in one line naming it, with nothing written and no time spent loading.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

import jax
import numpy as np

from phijax.data.hf_tokenizer import write_hf_tokenizer
from phijax.data.tokenizer import load_tokenizer
from phijax.errors import CheckpointError, PhijaxError
from phijax.model.checkpoint import (
    find_tokenizer,
    load_model_dir,
    load_newest_intact,
    nest,
    resolve_checkpoint,
    save_model_dir,
)
from phijax.model.hf import read_hf_config, read_hf_params, save_hf

log = logging.getLogger(__name__)


def hf_to_checkpoint(src: str | Path, dst: str | Path) -> Path:
    """Stream a HF checkpoint into a model directory, keeping the file's dtype (one copy in memory)."""
    cfg = read_hf_config(src)
    check_output_dir(dst)
    return save_model_dir(nest(_as_jax_arrays(read_hf_params(src, cfg))), cfg, dst)


def checkpoint_to_hf(src: str | Path, dst: str | Path) -> Path:
    """Write a model directory, checkpoint step or run directory (its newest intact step) as a HF directory,
    with the model's tokenizer files so `AutoTokenizer` and `pipeline` load it."""
    resolve_checkpoint(src)  # a wrong source is named before a wrong output, and both before the weights load
    check_output_dir(dst)
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


def check_output_dir(dst: str | Path) -> None:
    """CheckpointError (one line naming the path and the fix) when `dst` has files in it, or when it, or
    for a new directory its nearest existing parent, does not take new files; nothing is written.

    Tried by creating and removing an empty directory: permission bits, a read-only mount, or a quota
    all answer the same way, which `os.access` does not promise (root, network file systems).
    """
    out = Path(dst).absolute()
    if out.is_dir() and any(out.iterdir()):
        raise CheckpointError(f"{out} exists and is not empty: write to a new directory (nothing was overwritten)")
    existing = next(p for p in (out, *out.parents) if p.exists())
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".phijax-write-check-", dir=existing))
    except OSError as err:
        where = "" if existing == out else f" (in {existing})"
        raise CheckpointError(
            f"cannot write {out}{where}: {err.strerror}: pass an output directory you can write to "
            "(nothing was written)"
        ) from None


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

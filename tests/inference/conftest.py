"""Shared pieces of the inference tests: the tiny model (initialised once) and no-cache references."""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from phijax.model.config import preset_config
from phijax.model.phi4 import Phi4

TOKENIZER = Path(__file__).resolve().parents[2] / "configs" / "tiny" / "tokenizer.json"
PROMPTS = [[7, 300, 41, 95, 12], [500, 22, 3, 9, 77, 81, 63, 18, 240], [15, 16]]
FULL_LEN = 32  # right-padded length of the no-cache reference passes (one compilation)


def build_tiny() -> Phi4:
    return Phi4(preset_config("tiny"), rngs=nnx.Rngs(0))


def make_tiny() -> Phi4:
    """The tiny model, initialised inside jit (seconds faster than eager NNX initialisation)."""
    graphdef, _ = nnx.split(nnx.eval_shape(build_tiny))
    return nnx.merge(graphdef, jax.jit(lambda: nnx.split(build_tiny())[1])())


@pytest.fixture(scope="session")
def model() -> Phi4:
    return make_tiny()


@pytest.fixture(scope="session")
def sharded_model() -> Phi4:
    """The tiny model's parameters sharded over the 8-device CPU mesh (data 2, fsdp 2, tensor 2)."""
    from phijax.parallel.config import MeshConfig
    from phijax.parallel.mesh import build_mesh, init_sharded

    mesh_cfg = MeshConfig(data=2, fsdp=2, tensor=2)
    return init_sharded(build_tiny, build_mesh(mesh_cfg), mesh_cfg.rules)


@nnx.jit
def full_logits(model, ids):
    return model(ids)


def logits_without_cache(model: Phi4, ids: list[int], length: int = FULL_LEN) -> np.ndarray:
    """Logits [len(ids), vocab] of one full causal pass (right padding cannot reach earlier tokens)."""
    padded = np.zeros((1, max(length, len(ids))), np.int32)
    padded[0, : len(ids)] = ids
    return np.asarray(full_logits(model, jnp.asarray(padded)))[0, : len(ids)]

"""Mesh construction and logical-axis sharding on the 8-device CPU mesh."""

import jax
import numpy as np
import pytest
from flax import nnx
from jax.sharding import PartitionSpec as P

from phijax.errors import ConfigError
from phijax.model.config import preset_config
from phijax.model.phi4 import Phi4
from phijax.parallel.config import MeshConfig
from phijax.parallel.mesh import build_mesh, init_sharded, logical_to_spec, mesh_shape


def test_minus_one_takes_the_remaining_devices():
    assert mesh_shape(MeshConfig(data=2, fsdp=-1, tensor=2), 8) == (2, 2, 2)
    assert mesh_shape(MeshConfig(data=1, fsdp=-1, tensor=1), 8) == (1, 8, 1)


@pytest.mark.parametrize(
    "cfg, words",
    [
        (MeshConfig(data=-1, fsdp=-1), "at most one"),
        (MeshConfig(data=4, fsdp=4, tensor=1), "needs 16 devices"),
        (MeshConfig(data=3, fsdp=-1, tensor=1), "cannot be split"),
    ],
)
def test_bad_mesh_sizes_are_config_errors(cfg, words):
    with pytest.raises(ConfigError, match=words):
        mesh_shape(cfg, 8)


def test_smaller_mesh_uses_the_first_devices(caplog):
    mesh = build_mesh(MeshConfig(data=1, fsdp=4, tensor=1))
    assert list(mesh.devices.flat) == jax.devices()[:4]
    assert "first 4 of 8" in caplog.text


def test_rules_map_logical_axes_and_never_reuse_a_mesh_axis():
    rules = {"batch": ["data", "fsdp"], "embed": "fsdp", "vocab": "tensor", "length": None}
    assert logical_to_spec(("batch", "length"), rules) == P(("data", "fsdp"), None)
    assert logical_to_spec(("vocab", "embed"), rules) == P("tensor", "fsdp")
    assert logical_to_spec(("embed", "embed"), rules) == P("fsdp", None)
    with pytest.raises(ConfigError, match="no entry for logical axis `heads`"):
        logical_to_spec(("heads",), rules)


def test_tiny_model_initialises_sharded_as_the_rules_say():
    cfg = MeshConfig(data=2, fsdp=2, tensor=2)
    mesh = build_mesh(cfg)
    model = init_sharded(lambda: Phi4(preset_config("tiny"), rngs=nnx.Rngs(0)), mesh, cfg.rules)
    state = nnx.state(model, nnx.Param)
    expected = {
        "embed": P("tensor", "fsdp"),
        "lm_head": P("fsdp", "tensor"),
        "layers.attn.q": P(None, "fsdp", "tensor", None),
        "layers.attn.k": P(None, "fsdp", "tensor", None),
        "layers.attn.o": P(None, "tensor", None, "fsdp"),
        "layers.mlp.gate": P(None, "fsdp", "tensor"),
        "layers.mlp.down": P(None, "tensor", "fsdp"),
        "final_norm.scale": P(None),
    }
    leaves = dict(
        (".".join(str(getattr(k, "key", k)) for k in path), var[...])
        for path, var in jax.tree_util.tree_leaves_with_path(state, is_leaf=lambda x: isinstance(x, nnx.Variable))
    )
    for name, spec in expected.items():
        array = leaves[name]
        assert array.sharding.spec == spec, name
        # Really split: each device holds 1/parts of the array, not a replica.
        parts = np.prod([mesh.shape[a] for e in spec if e for a in ((e,) if isinstance(e, str) else e)])
        assert array.addressable_shards[0].data.size == array.size // parts, name
    # Same numbers as an unsharded init with the same seed (jit may round the last bit differently).
    plain = Phi4(preset_config("tiny"), rngs=nnx.Rngs(0))
    np.testing.assert_allclose(np.asarray(leaves["embed"]), np.asarray(plain.embed[...]), rtol=1e-6)


def test_indivisible_dimension_names_the_parameter():
    cfg = MeshConfig(data=1, fsdp=1, tensor=4)  # tiny has 2 KV heads
    with pytest.raises(ConfigError, match=r"layers\.attn\.k: dimension 2 \(kv_heads"):
        init_sharded(lambda: Phi4(preset_config("tiny"), rngs=nnx.Rngs(0)), build_mesh(cfg), cfg.rules)

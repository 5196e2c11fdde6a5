"""Per-device memory: analytic bytes from shard shapes, and the compiled step's memory analysis."""

import dataclasses

import jax
import pytest

from phijax.model.config import preset_config
from phijax.model.params import count_parameters
from phijax.parallel.mesh import build_mesh
from phijax.train.config import load_train_job
from phijax.train.memory import (
    activation_bytes,
    analytic_memory,
    compile_train_step,
    compiled_memory,
    device_memory_gib,
)
from phijax.train.optim import make_optimizer
from phijax.train.state import state_layout


def layout_for(cfg):
    mesh = build_mesh(cfg.mesh)
    return state_layout(cfg.model, make_optimizer(cfg.optim, cfg.train.steps), mesh, cfg.mesh.rules), mesh


def test_phi4_state_is_16_bytes_a_parameter_split_over_fsdp_except_the_replicated_norms():
    cfg = load_train_job([], ["model.preset=phi4-14b", "mesh.fsdp=8", "train.global_batch=8"])
    layout, mesh = layout_for(cfg)
    memory = analytic_memory(cfg, layout, mesh)
    counts = count_parameters(cfg.model)
    sharded = counts["total"] - counts["norms"]
    assert memory.params == 4 * (sharded // 8 + counts["norms"])
    assert memory.grads == memory.params
    assert memory.opt_state == pytest.approx(2 * memory.params, abs=64)  # + step counters


def test_full_remat_keeps_less_than_no_remat():
    model = preset_config("phi4-1b")
    saved = {
        remat: activation_bytes(dataclasses.replace(model, remat=remat), 1, 4096, 1, 1024)
        for remat in ("none", "dots", "dots_no_batch", "full")
    }
    assert saved["full"] < saved["dots_no_batch"] < saved["dots"] <= saved["none"]


def test_compiled_memory_of_the_tiny_step_on_the_cpu_mesh():
    cfg = load_train_job([], ["model.preset=tiny", "train.global_batch=8", "train.seq_len=32"])
    compiled, _, mesh = compile_train_step(cfg, jax.devices())
    memory = compiled_memory(compiled)
    assert memory.arguments > 0 and memory.temporaries > 0
    assert memory.total == (
        memory.arguments + memory.outputs - memory.aliased + memory.temporaries + memory.generated_code
    )
    assert mesh.devices.size == 8


def test_device_memory_table_tells_v5p_from_v5e():
    class Device:
        def __init__(self, kind):
            self.device_kind = kind

    assert device_memory_gib(Device("TPU v5")) == 95.0
    assert device_memory_gib(Device("TPU v5 lite")) == 16.0
    assert device_memory_gib(Device("NVIDIA H100 80GB HBM3")) == 80.0
    assert device_memory_gib(Device("cpu")) is None

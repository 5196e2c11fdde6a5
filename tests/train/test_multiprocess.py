"""Two processes x 4 CPU devices (jax.distributed, explicit coordinator) train like one process x 8."""

import socket
import subprocess

import pytest

from phijax.train.config import load_train_job
from phijax.train.trainer import train

from .conftest import TINY, logged_losses, overrides, train_command

MESH = {"mesh.data": 2, "mesh.fsdp": -1, "mesh.tensor": 1}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow  # two processes = one: also tests/parallel/test_multislice.py and test_resume_host_count.py
def test_two_processes_match_the_single_process_losses(tmp_path, child_env):
    single = train(load_train_job([TINY], overrides(tmp_path / "single", 4, **MESH))).losses
    run_dir = tmp_path / "multi"
    port = free_port()
    procs = []
    for index in range(2):
        env = {
            **child_env,
            "XLA_FLAGS": "--xla_force_host_platform_device_count=4",
            "PHIJAX_COORDINATOR_ADDRESS": f"127.0.0.1:{port}",
            "PHIJAX_NUM_PROCESSES": "2",
            "PHIJAX_PROCESS_ID": str(index),
        }
        command = train_command(run_dir, 4, **MESH, **{"mesh.cpu_devices": 4})
        procs.append(subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    for proc in procs:
        _, stderr = proc.communicate(timeout=300)
        assert proc.returncode == 0, stderr[-3000:]
    multi = logged_losses(run_dir)
    assert sorted(multi) == [1, 2, 3, 4]
    for step, loss in single.items():
        assert abs(multi[step] - loss) <= 2e-3 * abs(loss), (step, multi[step], loss)
    # Both processes wrote their own data-iterator state into the final checkpoint.
    data = sorted(p.name for p in (run_dir / "checkpoints" / "4" / "data").glob("process_*"))
    assert data == ["process_0-of-2.json", "process_1-of-2.json"]

"""DPO with two processes x 4 CPU devices: each reads its half of every batch of pairs, the reference
pass gathers every pair's log-probs on both, and the losses are those of one process x 8."""

import os
import socket
import subprocess
import sys

import pytest

from phijax.train.trainer import train

from .conftest import TINY_DPO, dpo_config, dpo_overrides, metrics

MESH = {"mesh.data": 2, "mesh.fsdp": -1, "mesh.tensor": 1}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow  # ~40 s on 2 cores: two processes compile side by side
def test_two_processes_match_the_single_process_dpo_losses(tmp_path, whole_pairs_file):
    single = train(dpo_config(tmp_path / "single", whole_pairs_file, **MESH)).losses
    run_dir, port, procs = tmp_path / "multi", free_port(), []
    for index in range(2):
        env = {
            **os.environ,
            "XLA_FLAGS": "--xla_force_host_platform_device_count=4",
            "PHIJAX_COORDINATOR_ADDRESS": f"127.0.0.1:{port}",
            "PHIJAX_NUM_PROCESSES": "2",
            "PHIJAX_PROCESS_ID": str(index),
        }
        command = [
            sys.executable,
            "-m",
            "phijax.cli",
            "dpo",
            "--config",
            str(TINY_DPO),
            *dpo_overrides(run_dir, whole_pairs_file, **MESH, **{"mesh.cpu_devices": 4}),
        ]
        procs.append(subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    for proc in procs:
        _, stderr = proc.communicate(timeout=300)
        assert proc.returncode == 0, stderr[-3000:]
    multi = {step: record["loss"] for step, record in metrics(run_dir).items()}
    assert sorted(multi) == [1, 2, 3, 4]
    for step, loss in single.items():
        assert abs(multi[step] - loss) <= 1e-4 * abs(loss), (step, multi[step], loss)
    data = sorted(p.name for p in (run_dir / "checkpoints" / "4" / "data").glob("process_*"))
    assert data == ["process_0-of-2.json", "process_1-of-2.json"]

"""Two-level meshes (`mesh.dcn_data`): the data axis spans slices or processes, fsdp and tensor
stay inside one; the same losses as a one-level mesh; and the multi-slice AOT compile's DCN report."""

import ast
import importlib.util
import json
import re
import subprocess
import sys
from dataclasses import dataclass

import numpy as np
import pytest

from phijax.cli import main as cli_main
from phijax.errors import ConfigError
from phijax.parallel.config import MeshConfig
from phijax.parallel.distributed import launch_kind
from phijax.parallel.mesh import build_mesh, hybrid_devices

from .conftest import RELATIVE_TOLERANCE, REPO, STEPS, TINY


@dataclass(frozen=True)
class FakeDevice:
    """Just what mesh building reads of a device (CPU platform: no physical topology to follow)."""

    id: int
    process_index: int
    slice_index: int | None = None
    platform: str = "cpu"
    device_kind: str = "cpu"


def granule_of(devices: np.ndarray, attribute: str) -> np.ndarray:
    return np.vectorize(lambda d: getattr(d, attribute))(devices)


def test_fsdp_and_tensor_stay_inside_a_process_even_when_devices_interleave():
    # jax.devices() order need not group a host's devices: here processes alternate.
    devices = [FakeDevice(id=i, process_index=i % 2) for i in range(8)]
    grid = hybrid_devices((2, 2, 2), 2, devices)
    processes = granule_of(grid, "process_index")
    assert processes.shape == (2, 2, 2)
    assert [set(processes[d].flat) for d in range(2)] == [{0}, {1}]
    # The in-order mesh of the same devices puts every fsdp group across both processes.
    in_order = granule_of(np.asarray(devices).reshape(2, 2, 2), "process_index")
    assert all(len(set(in_order[d].flat)) == 2 for d in range(2))


def test_slices_are_the_granules_where_devices_have_a_slice_index():
    # 2 slices, each spread over 2 processes (hosts): the granule is the slice, not the process.
    devices = [FakeDevice(id=i, process_index=i // 2, slice_index=i // 4) for i in range(8)]
    grid = hybrid_devices((4, 2, 1), 2, devices)
    slices = granule_of(grid, "slice_index")
    assert [set(slices[d].flat) for d in range(4)] == [{0}, {0}, {1}, {1}]


def test_one_process_is_one_granule():
    with pytest.raises(ConfigError, match="mesh.dcn_data=2 but the 8 devices have no slice index and 1 process"):
        build_mesh(MeshConfig(data=2, fsdp=-1, tensor=1, dcn_data=2))
    assert build_mesh(MeshConfig(data=2, fsdp=-1, tensor=1, dcn_data=1)).devices.shape == (2, 4, 1)


def test_inner_axes_that_do_not_fit_a_granule_are_config_errors():
    devices = [FakeDevice(id=i, process_index=i // 4) for i in range(8)]
    with pytest.raises(ConfigError, match=r"mesh.data \(1\) must be a multiple of mesh.dcn_data \(2\)"):
        hybrid_devices((1, 8, 1), 2, devices)
    uneven = [FakeDevice(id=i, process_index=int(i >= 6)) for i in range(8)]  # 6 + 2 devices
    with pytest.raises(ConfigError, match="do not fill a process of 2 or 6 devices"):
        hybrid_devices((2, 4, 1), 2, uneven)
    with pytest.raises(ConfigError, match="mesh.dcn_data is 0"):
        MeshConfig(dcn_data=0)


def test_cli_refuses_dcn_data_the_devices_cannot_form_in_one_line(tmp_path, capsys):
    status = cli_main(["train", "--config", str(TINY), f"run_dir={tmp_path / 'run'}", "mesh.dcn_data=2"])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2
    assert len(err) == 1 and "mesh.dcn_data=2" in err[0] and "set mesh.dcn_data" in err[0]


@pytest.mark.slow  # pays for both shared runs (3 processes of `phijax train`), also used by the resume tests
def test_two_processes_with_dcn_data_train_like_one_process(one_process_run, two_slice_run):
    assert sorted(two_slice_run.losses) == list(range(1, STEPS + 1))
    for step, loss in one_process_run.losses.items():
        assert abs(two_slice_run.losses[step] - loss) <= RELATIVE_TOLERANCE * abs(loss), step
    # Each process logs the process of every device of the mesh it built: [data][fsdp][tensor].
    for stderr in two_slice_run.stderr:
        line = next(x for x in stderr.splitlines() if "two-level mesh" in x)
        processes = np.asarray(ast.literal_eval(line[line.index("[[[") :]))
        assert processes.shape == (2, 4, 1)
        for data in range(2):  # an fsdp group (fixed data and tensor index) never spans the processes
            for tensor in range(1):
                assert len(set(processes[data, :, tensor])) == 1, processes
        assert set(processes[0].flat) != set(processes[1].flat)


def aot(*args: str) -> dict:
    """tools/aot_compile.py on this host (libtpu's topology description); its --json report."""
    done = subprocess.run(
        [sys.executable, str(REPO / "tools" / "aot_compile.py"), *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    path = re.search(r"--json (\S+)", " ".join(args))[1]
    report = json.loads(open(path).read())
    report["stdout"] = done.stdout
    return report


@pytest.mark.skipif(importlib.util.find_spec("libtpu") is None, reason='needs libtpu: pip install "jax[tpu]"')
def test_two_slice_compile_keeps_fsdp_all_gathers_off_the_dcn(tmp_path):
    tiny = [
        "--topology",
        "v5p:2x2x1",
        "--num-slices",
        "2",
        "--config",
        str(TINY),
        "--global-batch",
        "8",
        "--seq-len",
        "128",
    ]
    hybrid = aot(*tiny, "--json", str(tmp_path / "hybrid.json"))
    assert hybrid["chips"] == 8 and hybrid["mesh"] == {"data": 2, "fsdp": 4, "tensor": 1}
    assert "collectives across DCN" in hybrid["stdout"]
    kinds = [t["kind"] for t in hybrid["dcn_collectives"]]
    assert "ALL_REDUCE" in kinds  # the gradients, summed over the data axis
    # Only the data axis crosses the DCN; a one-level mesh over both slices would all-gather the
    # parameters across it (docs/launching.md: 31 DCN all-gathers for phi4-14b). The tiny model
    # also sends one small activation gather; the phi4-14b compile sends none.
    assert kinds.count("ALL_GATHER") <= 1 and "ALL_TO_ALL" not in kinds, kinds


def test_a_multislice_tpu_job_is_a_tpu_launch():
    assert launch_kind({"MEGASCALE_COORDINATOR_ADDRESS": "10.0.0.2:8080", "TPU_WORKER_HOSTNAMES": "localhost"}) == "tpu"
    assert launch_kind({"TPU_WORKER_HOSTNAMES": "localhost"}) == "single"

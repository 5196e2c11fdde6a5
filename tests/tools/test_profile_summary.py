"""phijax.train.profile and tools/profile_summary.py on hand-made traces shaped like jax's GPU and CPU
perfetto traces."""

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from phijax.train import profile as profile_summary

SCRIPT = Path(__file__).resolve().parents[2] / "tools" / "profile_summary.py"

HOST, GPU = 1, 2
COMPUTE, NCCL, DERIVED = 10, 20, 30
GEMM = "nvjet_tst_128x256_64x4_1x2_h_bz_coopA_NTN"
SDPA = "cudnn_generated_fort_native_sdpa_sm90_flash_fprop_wgmma_f16_knob_7_64x128x128_4x1x1_kernel0_0"
ALL_REDUCE = "ncclDevKernel_AllReduce_Sum_f32_RING_LL"


def meta(kind, pid, name, tid=None):
    event = {"ph": "M", "name": kind, "pid": pid, "args": {"name": name}}
    return event if tid is None else {**event, "tid": tid}


def op(tid, ts, dur, name, hlo_op=None, pid=GPU):
    args = {"correlation_id": 7} | ({"hlo_op": hlo_op, "hlo_module": "jit_step"} if hlo_op else {})
    return {"ph": "X", "pid": pid, "tid": tid, "ts": ts, "dur": dur, "name": name, "args": args}


def gpu_trace():
    """Two 1000 µs steps on one GPU: a gemm, cuDNN attention and a fusion each step, one copy, one
    all-reduce overlapping the first gemm, and a derived `XLA Ops` line repeating the gemms."""
    events = [
        meta("process_name", HOST, "/host:CPU"),
        meta("process_name", GPU, "/device:GPU:0"),
        meta("thread_name", HOST, "python", 1),
        meta("thread_name", GPU, "Stream #13(Compute,MemcpyD2D)", COMPUTE),
        meta("thread_name", GPU, "Stream #14(Compute)", NCCL),
        meta("thread_name", GPU, "XLA Ops", DERIVED),
        {"ph": "X", "pid": HOST, "tid": 1, "ts": 0, "dur": 1000, "name": "train", "args": {"step_num": "0"}},
        {"ph": "X", "pid": HOST, "tid": 1, "ts": 1000, "dur": 1000, "name": "train", "args": {"step_num": "1"}},
        op(1, 10, 1900, "ThunkExecutor::Execute gemm", pid=HOST),  # host events never count
        op(NCCL, 300, 100, ALL_REDUCE, "all-reduce-start.1"),
        op(COMPUTE, 1800, 50, "MemcpyD2D"),
    ]
    for start in (0, 1000):
        events += [
            op(COMPUTE, start + 100, 400, GEMM, "custom-call.1"),
            op(COMPUTE, start + 500, 200, SDPA, "custom-call.2"),
            op(COMPUTE, start + 700, 100, "loop_add_fusion", "loop_add_fusion.3"),
            op(DERIVED, start + 100, 400, "custom-call.1", "custom-call.1"),
        ]
    return events


def write_trace(directory, events, run="2025_01_01_00_00_00"):
    path = directory / "plugins" / "profile" / run / "perfetto_trace.json.gz"
    path.parent.mkdir(parents=True)
    with gzip.open(path, "wt") as f:
        json.dump({"displayTimeUnit": "ns", "traceEvents": events}, f)
    return path


def test_gpu_trace_time_per_category_busy_share_and_top_ops():
    s = profile_summary.summarise(gpu_trace(), top=3)
    op_us = 2 * 400 + 2 * 200 + 2 * 100 + 100 + 50  # kernels on the Stream lines only
    assert s["steps"] == 2 and s["wall_ms"] == 2.0 and s["device_op_events"] == 8
    assert s["op_time_ms"] == op_us / 1e3 == 1.55
    assert s["device_busy_ms"] == pytest.approx(1.45)  # the all-reduce overlaps the first gemm
    assert s["device_busy_share_of_wall"] == pytest.approx(1.45 / 2.0)
    expected = {"matmul": 800, "attention": 400, "other": 200, "collective": 100, "copy": 50}
    assert list(s["categories"]) == list(expected)  # largest first
    for name, us in expected.items():
        assert s["categories"][name]["ms"] == pytest.approx(us / 1e3)
        assert s["categories"][name]["ms_per_step"] == pytest.approx(us / 1e3 / 2)
        assert s["categories"][name]["share"] == pytest.approx(us / op_us)
    assert [(o["hlo_op"], o["kernel"], o["category"], o["count"]) for o in s["top_ops"]] == [
        ("custom-call.1", GEMM, "matmul", 2),
        ("custom-call.2", SDPA, "attention", 2),
        ("loop_add_fusion.3", "loop_add_fusion", "other", 2),
    ]
    assert s["top_ops"][0]["ms"] == pytest.approx(0.8) and s["top_ops"][0]["share"] == pytest.approx(800 / op_us)


def test_a_tpu_style_device_counts_its_xla_ops_line_when_it_has_no_streams():
    events = [
        meta("process_name", 3, "/device:TPU:0"),
        meta("thread_name", 3, "XLA Ops", 5),
        meta("thread_name", 3, "XLA Modules", 6),
        op(5, 0, 30, "fusion.1", pid=3),
        op(6, 0, 30, "jit_step(123)", pid=3),
    ]
    s = profile_summary.summarise(events)
    assert s["device_op_events"] == 1 and s["steps"] is None and s["categories"]["other"]["ms_per_step"] is None


def test_a_trace_with_only_host_events_says_so_and_reports_nothing_else():
    events = [e for e in gpu_trace() if e["pid"] == HOST]
    s = profile_summary.summarise(events)
    assert s == {"steps": 2, "wall_ms": 2.0, "device_op_events": 0, "note": profile_summary.NO_DEVICE_OPS}
    assert "no op events" in s["note"]


def cpu_trace():
    """One 1000 µs step on CPU as jax 0.10 records it: thunks with `hlo_op` on two XLA Eigen threads, a
    `while` thunk around the two thunks of its body, `end:` markers, an idle libtpu device process."""
    eigen_a, eigen_b = 3, 4

    def thunk(tid, ts, dur, name):
        return {
            "ph": "X",
            "pid": HOST,
            "tid": tid,
            "ts": ts,
            "dur": dur,
            "name": name,
            "args": {"hlo_op": name, "hlo_module": "jit_step", "_src": "thunk_executor.cc"},
        }

    return [
        meta("process_name", HOST, "/host:CPU"),
        meta("process_name", 9, "/device:CUSTOM:Megascale Trace"),
        meta("thread_name", HOST, "python", 1),
        meta("thread_name", HOST, "tf_XLAEigen/1", eigen_a),
        meta("thread_name", HOST, "tf_XLAEigen/2", eigen_b),
        {"ph": "X", "pid": HOST, "tid": 1, "ts": 0, "dur": 1000, "name": "train", "args": {"step_num": "0"}},
        {"ph": "X", "pid": HOST, "tid": eigen_a, "ts": 0, "dur": 900, "name": "ThunkExecutor::Execute", "args": {}},
        thunk(eigen_a, 0, 300, "dot.3"),
        thunk(eigen_b, 100, 300, "ynn_fusion.2"),
        thunk(eigen_a, 400, 500, "while.7"),
        thunk(eigen_a, 400, 200, "copy_bitcast_fusion.1"),
        thunk(eigen_a, 600, 300, "loop_add_fusion"),
        {
            "ph": "X",
            "pid": HOST,
            "tid": eigen_a,
            "ts": 900,
            "dur": 1,
            "name": "end: dot.3",
            "args": {"_src": "thunk_executor.cc"},
        },
    ]


def test_a_cpu_trace_counts_the_xla_thunks_but_not_the_loops_around_them():
    s = profile_summary.summarise(cpu_trace())
    assert s["device_op_events"] == 4 and s["op_time_ms"] == pytest.approx(1.1)
    assert s["device_busy_ms"] == pytest.approx(0.9)  # the two threads overlap from 100 to 300 µs
    expected = {"matmul": 300, "other": 600, "copy": 200}
    assert {name: c["ms"] * 1e3 for name, c in s["categories"].items()} == pytest.approx(expected)
    assert "while.7" not in [o["hlo_op"] for o in s["top_ops"]]


def test_the_cli_reads_the_newest_trace_under_the_directory(tmp_path):
    old = write_trace(tmp_path, [e for e in gpu_trace() if e["pid"] == HOST], run="old")
    write_trace(tmp_path, gpu_trace(), run="new")
    os.utime(old, (0, 0))
    done = subprocess.run(
        [sys.executable, str(SCRIPT), str(tmp_path), "--top", "2"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "new/perfetto_trace.json.gz: 2 steps, 2.0 ms wall" in done.stdout
    assert "device busy 1.45 ms = 72.5% of wall" in done.stdout
    assert "custom-call.1" in done.stdout and "custom-call.2" in done.stdout and "loop_add_fusion.3" not in done.stdout


def test_the_cli_without_a_trace_names_what_to_do(tmp_path):
    done = subprocess.run(
        [sys.executable, str(SCRIPT), str(tmp_path)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 1
    assert done.stderr.strip().startswith(f"profile_summary: no perfetto_trace.json.gz under {tmp_path}")

"""tools/bench_train.py in CI-sized settings: it runs, prints its table and writes the JSON fields."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "tools" / "bench_train.py"


def test_bench_train_writes_throughput_and_mfu_json(tmp_path):
    out = tmp_path / "bench.json"
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--preset", "tiny", "--batch", "8", "--seq-len", "32",
         "--warmup", "1", "--steps", "2", "--json", str(out)],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(out.read_text())
    assert result["preset"] == "tiny" and result["backend"] == "cpu"
    assert (result["global_batch"], result["seq_len"], result["timed_steps"]) == (8, 32, 2)
    assert len(result["step_times_s"]) == 2 and result["step_time_s"] > 0
    assert result["tokens_per_s"] == 8 * 32 / result["step_time_s"]
    assert result["best_step_time_s"] == min(result["step_times_s"])
    assert result["flops_per_token"] > 0 and 0 < result["mfu"] < 1
    assert "MFU" in done.stdout and "tokens/s" in done.stdout


def test_compare_hf_reports_the_throughput_ratio(tmp_path):
    pytest.importorskip("transformers")
    out = tmp_path / "bench.json"
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--preset", "tiny", "--batch", "8", "--seq-len", "32",
         "--warmup", "1", "--steps", "1", "--compare-hf", "--json", str(out)],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(out.read_text())
    assert result["hf"]["tokens_per_s"] > 0
    assert result["hf_ratio"] == result["tokens_per_s"] / result["hf"]["tokens_per_s"]
    assert result["hf_ratio_best"] == result["best_tokens_per_s"] / result["hf"]["best_tokens_per_s"]
    assert "phijax / HF" in done.stdout

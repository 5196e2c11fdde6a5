"""tools/bench_train.py in CI-sized settings: it runs, prints its table and writes the JSON fields."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "tools" / "bench_train.py"
HAVE_HF = importlib.util.find_spec("transformers") is not None and importlib.util.find_spec("torch") is not None


def test_bench_train_writes_throughput_mfu_and_the_hf_ratio(tmp_path):
    out = tmp_path / "bench.json"
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--preset", "tiny", "--batch", "8", "--seq-len", "32",
         "--warmup", "1", "--steps", "2", "--json", str(out), *(["--compare-hf"] if HAVE_HF else [])],
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
    if HAVE_HF:
        assert len(result["hf"]["step_times_s"]) == 2 and result["hf"]["tokens_per_s"] > 0
        assert result["hf_ratio"] == result["tokens_per_s"] / result["hf"]["tokens_per_s"]
        assert result["hf_ratio_best"] == result["best_tokens_per_s"] / result["hf"]["best_tokens_per_s"]
        assert "phijax / HF" in done.stdout


def test_bench_train_refuses_a_batch_the_mesh_cannot_split(tmp_path):
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--preset", "tiny", "--batch", "3", "--seq-len", "32",
         "--steps", "1", "--json", str(tmp_path / "b.json")],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert done.returncode == 1
    assert "--batch 3 must be a multiple of 8" in done.stderr.strip().splitlines()[-1]

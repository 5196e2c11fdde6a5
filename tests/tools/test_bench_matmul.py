"""tools/bench_matmul.py on CPU: it runs and its rates follow from its own timings."""

import json
import statistics
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "tools" / "bench_matmul.py"


def test_bench_matmul_reports_the_rate_of_its_timed_products(tmp_path):
    out = tmp_path / "matmul.json"
    run = subprocess.run(
        [sys.executable, str(SCRIPT), "--size", "256", "--repeats", "3", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    r = json.loads(out.read_text())
    assert r["backend"] == "cpu" and r["size"] == 256 and len(r["times_s"]) == 3
    assert abs(r["median_tflops"] - 2 * 256**3 / statistics.median(r["times_s"]) / 1e12) < 1e-9
    assert r["best_tflops"] >= r["median_tflops"] > 0
    assert "TFLOP/s median" in run.stdout

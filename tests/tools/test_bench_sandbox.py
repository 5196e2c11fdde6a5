"""tools/bench_sandbox.py: it runs the sandbox and reports throughput that adds up."""

import importlib.util
from pathlib import Path

_spec = importlib.util.spec_from_file_location(
    "bench_sandbox", Path(__file__).resolve().parents[2] / "tools" / "bench_sandbox.py"
)
bench_sandbox = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench_sandbox)


def test_bench_reports_runs_per_second_consistent_with_latency(capsys):
    report = bench_sandbox.main(["--runs", "2", "--json"])
    assert report["runs"] == 2 and report["workers"] == 1
    assert 0 < report["runs_per_s"] <= 1000 / report["median_ms"] * 1.5  # one worker: runs/s ~ 1/latency
    assert '"runs_per_s"' in capsys.readouterr().out

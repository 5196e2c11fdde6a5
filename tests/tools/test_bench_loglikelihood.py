"""tools/bench_loglikelihood.py at tiny size: it runs both cases on the same requests, packing changes
no score, the table and JSON carry requests/s; a bad override is one line and exit 2."""

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "tools" / "bench_loglikelihood.py"
SMALL = ["--preset", "tiny", "--requests", "24", "--choices", "4", "--rows-per-pass", "4"]


def bench(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=300, check=False
    )


def test_bench_reports_packed_and_one_per_pass_requests_per_second(tmp_path):
    out = tmp_path / "bench.json"
    done = bench(*SMALL, "--json", str(out))
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(out.read_text())
    rows = {r["case"]: r for r in report["results"]}
    assert set(rows) == {"packed", "one per pass"}
    for row in rows.values():
        assert row["requests"] == 24 and row["requests_per_s"] == 24 / row["seconds"] > 0
        assert row["max_diff"] < 1e-3  # packing does not change the scores
    assert rows["one per pass"]["speedup"] == 1.0
    assert report["machine"]["preset"] == "tiny" and "requests/s" in done.stdout


def test_a_bad_override_is_one_line_and_exit_2(tmp_path):
    done = bench(*SMALL, "--json", str(tmp_path / "bench.json"), "train.steps=3")
    assert done.returncode == 2 and done.stderr.strip().count("\n") == 0 and "only model.* keys" in done.stderr
    assert not (tmp_path / "bench.json").exists()

"""tools/bench_generate.py in CI-sized settings: it runs, prints its table and writes the JSON fields."""

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "tools" / "bench_generate.py"


def test_bench_generate_reports_phijax_and_hf_throughput(tmp_path):
    out = tmp_path / "bench.json"
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--presets", "tiny", "--batch", "2", "--prompt-len", "8",
         "--new-tokens", "4", "--repeats", "1", "--json", str(out)],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    rows = json.loads(out.read_text())["results"]
    cases = [r["case"] for r in rows]
    assert cases[:3] == ["phijax batch", "phijax shared", "hf batch 1t"]  # then torch's default threads
    assert all(case.startswith("hf batch") for case in cases[3:])
    for row in rows:
        assert (row["preset"], row["batch"], row["prompt_len"], row["new_tokens"]) == ("tiny", 2, 8, 4)
        assert row["tokens_per_s"] == 2 * 4 / row["seconds"] > 0
        assert row["agree"] == 1.0  # same weights, greedy: phijax and HF pick the same tokens
    assert "tokens/s" in done.stdout and "vs HF" in done.stdout

"""tools/bench_generate.py in CI-sized settings: it runs, prints its table and writes the JSON fields;
config overrides and the compute dtype reach both models; a bad override is one line and exit 2."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "tools" / "bench_generate.py"
SMALL = ["--presets", "tiny", "--batch", "2", "--prompt-len", "8", "--new-tokens", "4", "--repeats", "1"]


def bench(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=300, check=False
    )


def test_bench_generate_reports_phijax_and_hf_throughput(tmp_path):
    out = tmp_path / "bench.json"
    done = bench(*SMALL, "--json", str(out))
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(out.read_text())
    rows = report["results"]
    cases = [r["case"] for r in rows]
    assert cases[:2] == ["phijax batch", "phijax shared"]
    assert all(case.startswith("hf batch") for case in cases[2:])
    if report["machine"]["torch_device"] == "cpu":  # then HF on 1 thread and on torch's default
        assert cases[2] == "hf batch 1t"
    for row in rows:
        assert (row["preset"], row["batch"], row["prompt_len"], row["new_tokens"]) == ("tiny", 2, 8, 4)
        assert (row["num_layers"], row["dtype"]) == (2, "float32")
        assert row["tokens_per_s"] == 2 * 4 / row["seconds"] > 0
        assert row["agree"] == 1.0  # same weights, fp32 greedy: phijax and HF pick the same tokens
    assert max(r["vs_hf"] for r in rows if r["case"].startswith("hf")) == 1.0
    assert "tokens/s" in done.stdout and "vs HF" in done.stdout


def test_overrides_and_bfloat16_reach_both_models_and_the_json(tmp_path):
    out = tmp_path / "bench.json"
    done = bench(*SMALL, "--compute-dtype", "bfloat16", "--json", str(out), "model.num_layers=1")
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(out.read_text())
    machine = report["machine"]
    assert (machine["dtype"], machine["overrides"]) == ("bfloat16", ["model.num_layers=1"])
    assert {"jax_backend", "jax_device_kind", "torch_device", "torch_gpu"} <= machine.keys()
    for row in report["results"]:
        assert (row["num_layers"], row["dtype"]) == (1, "bfloat16")
        assert 0.0 <= row["agree"] <= 1.0  # bf16 greedy tokens may part at near-ties: reported only
    assert "bfloat16" in done.stdout


@pytest.mark.parametrize(
    "override, words",
    [
        ("model.num_layer=1", "did you mean `model.num_layers`"),
        ("train.steps=3", "only model.* keys"),
    ],
)
def test_a_bad_override_is_one_line_and_exit_2(tmp_path, override, words):
    done = bench(*SMALL, "--json", str(tmp_path / "bench.json"), override)
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and words in done.stderr
    assert not (tmp_path / "bench.json").exists()

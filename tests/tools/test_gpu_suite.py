"""tools/gpu_suite.sh on CPU at a tiny shape: the flags it hands each tool are ones they accept, and
each stage leaves its figures in $OUT. (Its default shape needs a GPU; CI has none.)"""

import importlib.util
import json
import os
import subprocess
from pathlib import Path

import pytest

SUITE = Path(__file__).resolve().parents[2] / "tools" / "gpu_suite.sh"
TINY = {
    "PRESET": "tiny",
    "LAYERS": "1",
    "SEQ": "32",
    "DTYPE": "float32",
    "ATTENTION": "xla",
    "BATCH": "8",
    "REMAT": "none full",
    "STEPS": "2",
    "WARMUP": "1",
    "GEN_BATCH": "2",
    "PROMPT": "8",
    "NEW": "4",
}


def suite(stage: str, tmp_path: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, **TINY, "OUT": str(tmp_path / "out"), "TRACES": str(tmp_path / "traces")}
    return subprocess.run(["bash", str(SUITE), stage], env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.slow  # ~100 s on 2 cores: the GPU suite's train, flags and generate stages at a tiny shape
@pytest.mark.skipif(importlib.util.find_spec("transformers") is None, reason="needs torch and transformers")
def test_train_and_generate_stages_write_their_figures(tmp_path):
    done = suite("train", tmp_path)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    out = tmp_path / "out"
    hf = json.loads((out / "hf.json").read_text())
    train = json.loads((out / "train.json").read_text())
    assert (hf["preset"], hf["num_layers"], train["num_layers"], train["seq_len"]) == ("tiny", 1, 1, 32)
    assert [c["remat"] for c in train["configurations"]] == ["none", "full"]
    assert train["hf"]["source"] == f"separate process ({out / 'hf.json'})"
    assert all("hf_ratio" in c and "profile" in c for c in train["configurations"])
    assert "vs HF" in (out / "train.log").read_text()
    assert not (out / "train_profile").exists() and any((tmp_path / "traces").rglob("perfetto_trace.json.gz"))

    done = suite("flags", tmp_path)  # every flag set parses in this jaxlib; one record each
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    flag_runs = [json.loads((out / f"flags_{i}.json").read_text()) for i in range(4)]
    assert all([c["remat"] for c in r["configurations"]] == ["none"] for r in flag_runs)
    assert (out / "flags.log").read_text().count("== XLA_FLAGS=") == 4

    done = suite("generate", tmp_path)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    rows = json.loads((out / "generate.json").read_text())["results"]
    assert {r["case"] for r in rows} >= {"phijax batch", "phijax shared"} and all(r["num_layers"] == 1 for r in rows)


def test_an_unknown_stage_is_refused_in_one_line(tmp_path):
    done = suite("benchmark", tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "gpu_suite: unknown stage 'benchmark'; use check, train, flags or generate"
    ]

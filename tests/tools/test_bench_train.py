"""tools/bench_train.py in CI-sized settings: the remat sweep, its JSON and table, and its refusals."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "tools" / "bench_train.py"
HAVE_HF = importlib.util.find_spec("transformers") is not None and importlib.util.find_spec("torch") is not None


def run_bench(*args):
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=300, check=False
    )


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_train", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bench_train_sweeps_remat_with_hf_ratios_overrides_and_cpu_profiles(tmp_path):
    out = tmp_path / "bench.json"
    done = run_bench(
        "--preset",
        "tiny",
        "--batch",
        "8",
        "--seq-len",
        "32",
        "--warmup",
        "1",
        "--steps",
        "2",
        "--json",
        str(out),
        *(["--compare-hf"] if HAVE_HF else []),
        "--remat",
        "none",
        "full",
        "--profile",
        "--profile-steps",
        "2",
        "model.num_layers=1",
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(out.read_text())
    assert result["preset"] == "tiny" and result["backend"] == "cpu" and result["num_layers"] == 1
    assert (result["global_batch"], result["seq_len"], result["timed_steps"]) == (8, 32, 2)
    assert result["documents_per_row"] == 1 and result["flops_per_token"] > 0
    records = result["configurations"]
    assert [r["remat"] for r in records] == ["none", "full"] and all(r["status"] == "ok" for r in records)
    for r in records:
        assert len(r["step_times_s"]) == 2 and r["step_time_s"] > 0 and r["compile_s"] > 0
        assert r["tokens_per_s"] == 8 * 32 / r["step_time_s"]
        assert r["best_step_time_s"] == min(r["step_times_s"])
        assert 0 < r["mfu"] < 1 and r["compiled_memory_bytes"]["total"] > 0
        assert r["profile"]["steps"] == 2 and r["profile"]["device_op_events"] > 0  # XLA's CPU thunks
        assert "note" not in r["profile"] and sum(c["share"] for c in r["profile"]["categories"].values()) > 0.99
        assert Path(r["profile"]["trace"]).is_relative_to(tmp_path / "bench_profile" / r["remat"])
    assert result["best_remat"] == max(records, key=lambda r: r["tokens_per_s"])["remat"]
    lines = done.stdout.splitlines()
    assert any(line.split()[:1] == ["none"] for line in lines) and any(line.split()[:1] == ["full"] for line in lines)
    assert "MFU" in done.stdout and f"best: {result['best_remat']}" in done.stdout
    assert done.stdout.count("device busy") == 2 and "top ops" in done.stdout
    if HAVE_HF:
        hf = result["hf"]
        assert hf["status"] == "ok" and len(hf["step_times_s"]) == 2 and hf["tokens_per_s"] > 0
        for r in records:  # every configuration against the one HF timing
            assert r["hf_ratio"] == r["tokens_per_s"] / hf["tokens_per_s"]
            assert r["hf_ratio_best"] == r["best_tokens_per_s"] / hf["best_tokens_per_s"]
        assert "HF torch" in done.stdout and "vs HF" in done.stdout


def test_one_document_per_row_has_no_segment_ids(bench):
    tokens = bench.random_tokens(vocab=50, batch=2, seq_len=8)
    assert "segment_ids" not in tokens
    assert (tokens["positions"] == np.arange(8)).all()
    assert (tokens["targets"][:, :-1] == tokens["input_ids"][:, 1:]).all()


def test_packed_documents_get_segment_ids_and_positions_that_restart(bench):
    tokens = bench.random_tokens(vocab=50, batch=2, seq_len=8, documents_per_row=4)
    assert tokens["segment_ids"].tolist() == [[1, 1, 2, 2, 3, 3, 4, 4]] * 2
    assert tokens["positions"].tolist() == [[0, 1, 0, 1, 0, 1, 0, 1]] * 2
    assert tokens["loss_mask"].all()


class OutOfMemoryError(RuntimeError):
    """Named like torch's, which bench_train recognises by name."""


def test_out_of_memory_is_a_row_and_the_sweep_goes_on(bench, tmp_path, monkeypatch, capsys):
    import jax

    real_step = bench.phijax_step

    def step_out_of_memory_without_remat(cfg, mesh, tokens):
        if cfg.model.remat == "none":
            raise jax.errors.JaxRuntimeError("RESOURCE_EXHAUSTED: Out of memory while trying to allocate 42 bytes.")
        return real_step(cfg, mesh, tokens)

    def hf_out_of_memory(*_):
        def run_step():
            raise OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

        return run_step

    monkeypatch.setattr(bench, "phijax_step", step_out_of_memory_without_remat)
    monkeypatch.setattr(bench, "hf_step", hf_out_of_memory)
    monkeypatch.setenv("XLA_PYTHON_CLIENT_PREALLOCATE", "false")  # what main sets for --compare-hf, undone after
    out = tmp_path / "bench.json"
    assert (
        bench.main(
            [
                "--preset",
                "tiny",
                "--batch",
                "8",
                "--seq-len",
                "32",
                "--warmup",
                "1",
                "--steps",
                "2",
                "--compare-hf",
                "--remat",
                "none",
                "full",
                "--json",
                str(out),
            ]
        )
        == 0
    )
    result = json.loads(out.read_text())
    none, full = result["configurations"]
    assert none == {
        "remat": "none",
        "status": "out of memory",
        "out_of_memory_in": "phijax",
        "error": "RESOURCE_EXHAUSTED: Out of memory while trying to allocate 42 bytes.",
    }
    # HF ran out beside `full`, the first configuration that ran: `full` is timed again alone
    assert full["status"] == "ok" and len(full["step_times_s"]) == 2 and "hf_ratio" not in full
    assert result["hf"] == {"status": "out of memory", "error": "CUDA out of memory. Tried to allocate 2.00 GiB"}
    assert result["best_remat"] == "full"
    table = capsys.readouterr().out
    assert "none          out of memory in phijax (RESOURCE_EXHAUSTED" in table
    assert "HF torch      out of memory (CUDA out of memory" in table


def test_packed_documents_run_and_are_recorded(bench, tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert (
        bench.main(
            [
                "--preset",
                "tiny",
                "--batch",
                "8",
                "--seq-len",
                "32",
                "--warmup",
                "1",
                "--steps",
                "1",
                "--documents-per-row",
                "2",
                "--json",
                str(out),
            ]
        )
        == 0
    )
    result = json.loads(out.read_text())
    assert result["documents_per_row"] == 2 and result["configurations"][0]["status"] == "ok"
    assert "2 documents per row" in capsys.readouterr().out


def test_an_error_other_than_out_of_memory_propagates(bench, monkeypatch, tmp_path):
    def broken_step(cfg, mesh, tokens):
        raise RuntimeError("INTERNAL: a bug")

    monkeypatch.setattr(bench, "phijax_step", broken_step)
    with pytest.raises(RuntimeError, match="a bug"):
        bench.main(["--preset", "tiny", "--batch", "8", "--seq-len", "32", "--json", str(tmp_path / "b.json")])


def test_documents_that_do_not_divide_the_row_are_refused_in_one_line(tmp_path):
    done = run_bench(
        "--preset", "tiny", "--seq-len", "32", "--documents-per-row", "3", "--json", str(tmp_path / "b.json")
    )
    assert done.returncode == 1
    assert done.stderr.strip() == (
        "bench_train: --documents-per-row 3 must divide --seq-len 32; choose a divisor of the sequence length"
    )


def test_a_bad_override_gives_one_line_and_exit_status_2(tmp_path):
    done = run_bench("--preset", "tiny", "--steps", "1", "model.num_layer=1", "--json", str(tmp_path / "b.json"))
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "bench_train: unknown config key `model.num_layer` (from command line); did you mean `model.num_layers`?"
    )


def test_bench_train_refuses_a_batch_the_mesh_cannot_split(tmp_path):
    done = run_bench(
        "--preset", "tiny", "--batch", "3", "--seq-len", "32", "--steps", "1", "--json", str(tmp_path / "b.json")
    )
    assert done.returncode == 1
    assert "--batch 3 must be a multiple of 8" in done.stderr.strip().splitlines()[-1]


@pytest.mark.slow
@pytest.mark.skipif(not HAVE_HF, reason="needs torch and transformers")
def test_hf_timed_in_its_own_process_is_the_reference_of_a_later_phijax_run(tmp_path):
    shape = ["--preset", "tiny", "--batch", "8", "--seq-len", "32", "--warmup", "1", "--steps", "2"]
    hf_json, out = tmp_path / "hf.json", tmp_path / "bench.json"
    done = run_bench(*shape, "--hf-only", "--json", str(hf_json))
    assert done.returncode == 0, done.stderr[-2000:]
    saved = json.loads(hf_json.read_text())
    assert "configurations" not in saved and saved["torch_device"] == "cpu" and saved["global_batch"] == 8
    assert saved["hf"]["tokens_per_s"] == 8 * 32 / saved["hf"]["step_time_s"]

    done = run_bench(*shape, "--remat", "none", "--hf-result", str(hf_json), "--json", str(out))
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(out.read_text())
    [record] = result["configurations"]
    assert result["hf"]["source"] == f"separate process ({hf_json})"
    assert record["hf_ratio"] == record["tokens_per_s"] / saved["hf"]["tokens_per_s"]
    assert "separate process" in done.stdout

    other = run_bench(
        "--preset",
        "tiny",
        "--batch",
        "16",
        "--seq-len",
        "32",
        "--hf-result",
        str(hf_json),
        "--json",
        str(tmp_path / "other.json"),
    )
    assert other.returncode != 0 and not (tmp_path / "other.json").exists()
    [line] = other.stderr.strip().splitlines()
    assert "global_batch 8 != 16" in line and "--hf-only" in line


def test_hf_flags_are_alternatives(tmp_path):
    done = run_bench("--hf-only", "--compare-hf", "--json", str(tmp_path / "x.json"))
    assert done.returncode != 0
    assert done.stderr.strip().splitlines() == [
        "bench_train: --compare-hf, --hf-only and --hf-result are alternatives; pick one"
    ]

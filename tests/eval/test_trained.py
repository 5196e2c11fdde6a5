"""A model trained by phijax (`trained_run`, a few tiny steps) end to end: exported with `phijax convert
to-hf` it scores like lm-eval's own `hf` backend, and `phijax eval --config configs/tiny/eval.yaml` runs
on it from the command line; a missing benchmark file or a bad lm-eval task is one line, exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("lm_eval")

from lm_eval.api.instance import Instance  # noqa: E402
from lm_eval.api.registry import get_model  # noqa: E402

from phijax.eval.harness import PhijaxLM  # noqa: E402

from .conftest import REPO, phijax_cli  # noqa: E402

BENCH = REPO / "configs" / "tiny" / "benchmarks" / "arithmetic_mc.jsonl"
EVAL_CONFIG = "configs/tiny/eval.yaml"


def choice_requests() -> list[Instance]:
    """Every (question, choice) of the tiny multiple-choice benchmark as lm-eval sends it."""
    docs = [json.loads(line) for line in BENCH.read_text().splitlines()]
    pairs = [(f"{d['question']}\nAnswer:", f" {c}") for d in docs for c in d["choices"]]
    return [Instance("loglikelihood", {}, pair, i) for i, pair in enumerate(pairs)]


def test_exported_trained_model_loglikelihoods_match_lm_eval_hf_per_sample(trained_hf: Path) -> None:
    hf = get_model("hf").create_from_arg_string(f"pretrained={trained_hf},batch_size=16,dtype=float32,device=cpu")
    ours = PhijaxLM.create_from_arg_string(f"pretrained={trained_hf},batch_size=16")
    requests = choice_requests()
    assert [ours.tok_encode(r.args[0]) for r in requests] == [hf.tok_encode(r.args[0]) for r in requests]
    want, got = hf.loglikelihood(requests, disable_tqdm=True), ours.loglikelihood(requests, disable_tqdm=True)
    assert len(got) == len(want) == 64
    assert max(abs(a - b) for (a, _), (b, _) in zip(want, got)) < 1e-4
    assert [g for _, g in got] == [g for _, g in want]


def test_phijax_eval_on_the_tiny_config_prints_the_table_and_writes_results_and_samples(
    trained_run: Path, tmp_path: Path
) -> None:
    out = tmp_path / "eval"
    done = phijax_cli(
        "eval",
        "--config",
        EVAL_CONFIG,
        f"policy.checkpoint={trained_run}",
        f"output_dir={out}",
        "limit=4",
        "--log-samples",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    table = done.stdout
    for cell in ("policy", "evaluator", "multiple_choice", "exact_match", "tiny_arithmetic_mc", "acc"):
        assert cell in table
    report = json.loads((out / "results.json").read_text())
    (scores,) = report["results"].values()
    assert {"multiple_choice", "exact_match"} <= set(scores) and any(k.startswith("lm_eval") for k in scores)
    assert scores["multiple_choice"]["samples"] == 4 and 0.0 <= scores["multiple_choice"]["metrics"]["acc"] <= 1.0
    for name in ("samples_multiple_choice.jsonl", "samples_exact_match.jsonl"):
        assert len((out / name).read_text().splitlines()) == 4


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("evaluators=[{name: multiple_choice, file: configs/tiny/benchmarks/nope.jsonl}]", "nope.jsonl"),
        (
            "evaluators=[{name: lm_eval, tasks: [tiny_arithmetic_nope], include_path: configs/tiny/lm_eval, "
            "include_defaults: false}]",
            "tiny_arithmetic_nope",
        ),
        (
            "evaluators=[{name: lm_eval, tasks: [tiny_arithmetic_mc], include_path: configs/tiny/nowhere, "
            "include_defaults: false}]",
            "configs/tiny/nowhere",
        ),
    ],
)
def test_a_missing_benchmark_or_bad_lm_eval_task_is_one_line_exit_2(tmp_path: Path, override: str, message: str):
    done = phijax_cli("eval", "--config", EVAL_CONFIG, f"policy.checkpoint={tmp_path}", override)
    err = done.stderr.strip()
    assert done.returncode == 2 and message in err and len(err.splitlines()) == 1, err[-2000:]

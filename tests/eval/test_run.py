"""`phijax eval` with fake policies and evaluators registered in-process: table, files, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from phijax.cli import main
from phijax.plugins import hookimpl
from phijax.plugins.protocols import GENERATE, LOGLIKELIHOOD, EvaluationResult


class FakePolicy:
    def __init__(self, name: str, capabilities: frozenset[str]) -> None:
        self.name, self.capabilities = name, capabilities

    def loglikelihood(self, requests):
        return [(-float(len(c)), True) for _, c in requests]

    def generate(self, prompts, **kwargs):
        return [["42"] for _ in prompts]


class Choice:
    requires = frozenset({LOGLIKELIHOOD})

    def __init__(self, answers: int = 3, limit: int | None = None) -> None:
        self.answers = answers if limit is None else min(answers, limit)

    def items(self):
        return [{"id": str(i), "text": "q"} for i in range(self.answers)]

    def __call__(self, policy, *, seed):
        scores = policy.loglikelihood([("q", " a")] * self.answers)
        samples = [
            {
                "id": str(i),
                "context": "q",
                "continuation": " a",
                "loglikelihood": s,
                "target": " a",
                "metrics": {"acc": 1.0},
            }
            for i, (s, _) in enumerate(scores)
        ]
        return EvaluationResult({"acc": 1.0}, {"acc": 0.0}, samples)


class Generation(Choice):
    requires = frozenset({GENERATE})

    def __call__(self, policy, *, seed):
        texts = policy.generate(["q"] * self.answers, max_new_tokens=4)
        return EvaluationResult({"exact_match": 0.5}, {"exact_match": 0.25}, [{"id": "0", "generation": texts[0][0]}])


class Plugin:
    @hookimpl
    def phijax_register_backends(self, register):
        register(
            "fake",
            lambda *, mesh, checkpoint="m", capabilities=("generate", "loglikelihood"), **_: FakePolicy(
                f"fake:{checkpoint}", frozenset(capabilities)
            ),
        )

    @hookimpl
    def phijax_register_evaluators(self, register):
        register("choice", Choice)
        register("generation", Generation)


def write_config(tmp_path: Path, **extra) -> Path:
    config = {
        "policies": [{"backend": "fake", "checkpoint": "a"}, {"backend": "fake", "checkpoint": "b"}],
        "evaluators": [{"name": "choice", "answers": 4}, {"name": "generation"}],
        "output_dir": str(tmp_path / "out"),
        **extra,
    }
    path = tmp_path / "eval.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_eval_prints_a_table_and_writes_results_and_samples(tmp_path, phijax_registry, capsys) -> None:
    phijax_registry(Plugin())
    assert main(["eval", "--config", str(write_config(tmp_path)), "--log-samples", "seed=3"]) == 0
    table = capsys.readouterr().out
    assert "fake:a" in table and "fake:b" in table and "± 0.2500" in table
    report = json.loads((tmp_path / "out" / "results.json").read_text())
    assert report["results"]["fake:a"]["choice"] == {
        **report["results"]["fake:a"]["choice"],
        "metrics": {"acc": 1.0},
        "samples": 4,
        "requests": 4,
    }
    assert report["config"]["seed"] == 3 and "jax" in report["versions"]
    assert report["timings"]["total"] >= 0 and "choice" in report["timings"]["fake:a"]  # fakes take < 1 ms
    lines = (tmp_path / "out" / "samples_choice.jsonl").read_text().splitlines()
    assert len(lines) == 8 and json.loads(lines[0])["policy"] == "fake:a"
    assert (tmp_path / "out" / "samples_generation.jsonl").is_file()


def test_limit_is_passed_to_each_evaluator(tmp_path, phijax_registry) -> None:
    phijax_registry(Plugin())
    assert main(["eval", "--config", str(write_config(tmp_path)), "limit=2"]) == 0
    report = json.loads((tmp_path / "out" / "results.json").read_text())
    assert report["results"]["fake:a"]["choice"]["samples"] == 2
    assert not list((tmp_path / "out").glob("samples_*"))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["evaluators=[{name: choise}]"], "did you mean 'choice'"),
        (["policies=[{backend: fake, capabilities: [generate]}]"], "needs loglikelihood"),
        (["evaluators=[{name: choice}, {name: choice}]"], "distinct `label`"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path, phijax_registry, capsys, overrides, message) -> None:
    phijax_registry(Plugin())
    assert main(["eval", "--config", str(write_config(tmp_path)), *overrides]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_a_malformed_benchmark_file_names_file_and_line(tmp_path, capsys) -> None:
    bench = tmp_path / "mc.jsonl"
    bench.write_text('{"question": "q", "choices": ["a", "b"], "answer": 0}\n{"question": \n')
    config = write_config(
        tmp_path,
        evaluators=[{"name": "multiple_choice", "file": str(bench)}],
        policies=[{"backend": "local", "checkpoint": str(tmp_path)}],
    )
    assert main(["eval", "--config", str(config)]) == 2
    err = capsys.readouterr().err.strip()
    assert f"{bench}:2" in err and len(err.splitlines()) == 1


def test_lm_eval_not_installed_is_one_line_naming_the_extra(tmp_path, phijax_registry, capsys, monkeypatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "lm_eval" else real(name, *a))
    phijax_registry(Plugin())
    assert main(["eval", "--config", str(write_config(tmp_path)), "evaluators=[{name: lm_eval, tasks: x}]"]) == 2
    err = capsys.readouterr().err.strip()
    assert "pip install phijax[eval]" in err and len(err.splitlines()) == 1

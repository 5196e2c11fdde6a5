"""Benchmarks given as evaluators (`{evaluator, ...options}`, `--eval-config`) and as `.jsonl.gz` files."""

from __future__ import annotations

import argparse
import gzip
import json

import pytest
import yaml

from phijax.data.decontam import BenchmarkSpec, DecontamConfig, DecontamError, Decontaminator, read_items
from phijax.data.decontam import cli as decontam_cli
from phijax.data.decontam.config import decontam_config
from phijax.data.decontam.run import eval_config_benchmarks

QUESTIONS = [
    "Which gas do green plants take in from the air to make their food?",
    "What is the main job of the red blood cells in the human body?",
    "Which planet in our solar system is known for its large ring system?",
]
CHOICES = [
    [
        "carbon dioxide from the surrounding air",
        "oxygen from the surrounding soil",
        "nitrogen from rain water",
        "helium",
    ],
    ["carrying oxygen to every organ", "fighting germs that enter wounds", "clotting blood after a cut", "none"],
    ["saturn with its bright icy rings", "mars with its two small moons", "venus under its thick clouds", "pluto"],
]
# Copies the choices of item 1 (not its question): only an index that holds the choices can see it.
PLANTED = "A quiz I liked. " + " ".join(CHOICES[1]) + " That was all of it, thanks for reading."
CLEAN = "Cells need oxygen, and the heart pumps blood through the body all day long without rest."


@pytest.fixture
def mmlu(tmp_path):
    """An MMLU-format benchmark file of three items, ids mc-0..mc-2."""
    path = tmp_path / "mmlu.jsonl"
    rows = [
        {"id": f"mc-{i}", "question": q, "choices": c, "answer": 0} for i, (q, c) in enumerate(zip(QUESTIONS, CHOICES))
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def verdicts(spec: BenchmarkSpec, docs: list[str]) -> list[tuple]:
    checker = Decontaminator(DecontamConfig(benchmarks=(spec,)))
    return [(v.status, v.reason, v.benchmark, v.item_id, v.ngram) for v in checker.check_batch(docs)]


def test_planted_copy_of_an_evaluator_item_is_flagged_as_with_the_file_itself(mmlu):
    docs = [PLANTED, CLEAN, QUESTIONS[2] + " " + " ".join(CHOICES[2])]
    by_evaluator = verdicts(BenchmarkSpec("mmlu", evaluator="multiple_choice", options={"file": str(mmlu)}), docs)
    by_file = verdicts(BenchmarkSpec("mmlu", (str(mmlu),)), docs)
    assert by_evaluator == by_file
    assert by_evaluator[0][:4] == ("contaminated", "13-gram", "mmlu", "mc-1")
    assert by_evaluator[1][0] == "clean" and by_evaluator[2][:4] == ("contaminated", "13-gram", "mmlu", "mc-2")


def test_an_evaluator_spec_from_yaml_is_named_after_its_evaluator_and_passes_its_options(mmlu):
    config = decontam_config({"benchmarks": [{"evaluator": "multiple_choice", "file": str(mmlu), "limit": 2}]})
    (spec,) = config.benchmarks
    assert spec.name == "multiple_choice" and spec.options == {"file": str(mmlu), "limit": 2}
    assert [i.item_id for i in read_items(spec)] == ["mc-0", "mc-1"]  # the evaluator's own limit applies
    assert hash(config) == hash(decontam_config(config.settings()))  # hashable: indices are cached by settings


@pytest.mark.parametrize(
    "raw, message",
    [
        ({"evaluator": "multiple_choise", "file": "x.jsonl"}, "multiple_choise"),
        ({"evaluator": "multiple_choice", "file": "missing.jsonl"}, "missing.jsonl not found"),
        ({"evaluator": "multiple_choice", "paths": ["x.jsonl"]}, "gives both `evaluator` and paths"),
        ({"name": "b", "paths": ["x.jsonl"], "feilds": ["q"]}, "unknown key `feilds`"),
    ],
)
def test_bad_evaluator_specs_are_one_line_errors(raw, message):
    with pytest.raises(DecontamError) as err:
        list(read_items(decontam_config({"benchmarks": [raw]}).benchmarks[0]))
    assert message in str(err.value) and "\n" not in str(err.value)


def test_eval_config_indexes_every_evaluator_it_lists(tmp_path, mmlu, capsys):
    gsm8k = tmp_path / "gsm8k.jsonl"
    item = {"id": "g-0", "question": "Natalia sold clips to 48 of her friends in April and then half as many in May."}
    gsm8k.write_text(json.dumps({**item, "answer": "48 + 24 = 72\n#### 72"}) + "\n")
    job = {
        "policy": {"backend": "local", "checkpoint": "runs/none"},
        "evaluators": [
            {"name": "multiple_choice", "file": str(mmlu)},
            {"name": "exact_match", "label": "gsm8k", "file": str(gsm8k)},
        ],
    }
    (tmp_path / "eval.yaml").write_text(yaml.safe_dump(job))
    docs = [PLANTED, "Story: " + item["question"] + " The end.", CLEAN]
    (tmp_path / "train.jsonl").write_text("".join(json.dumps({"text": d}) + "\n" for d in docs))
    parser = argparse.ArgumentParser()
    decontam_cli.add_arguments(parser)
    out = tmp_path / "out"
    argv = ["--input", str(tmp_path / "train.jsonl"), "--eval-config", str(tmp_path / "eval.yaml")]
    assert decontam_cli.run(parser.parse_args([*argv, "--out", str(out), "--processes", "1", "--json"])) == 0
    flagged = [json.loads(line) for line in (out / "flagged.jsonl").read_text().splitlines()]
    assert [(f["benchmark"], f["item_id"]) for f in flagged] == [("multiple_choice", "mc-1"), ("gsm8k", "g-0")]
    assert (out / "input" / "train.jsonl").read_text() == json.dumps({"text": CLEAN}) + "\n"


def test_the_tiny_eval_config_names_one_benchmark_per_evaluator():
    specs = eval_config_benchmarks(["configs/tiny/eval.yaml"])
    assert [(s.name, s.evaluator) for s in specs] == [
        ("multiple_choice", "multiple_choice"),
        ("exact_match", "exact_match"),
        ("lm_eval", "lm_eval"),
    ]
    assert specs[0].options["file"] == "configs/tiny/benchmarks/arithmetic_mc.jsonl"
    with pytest.raises(DecontamError, match="--eval-config 'nope.yaml' does not exist"):
        eval_config_benchmarks(["nope.yaml"])


def test_gzipped_benchmark_files_read_like_plain_ones(tmp_path, mmlu):
    packed = tmp_path / "mmlu.jsonl.gz"
    packed.write_bytes(gzip.compress(mmlu.read_bytes()))
    plain = list(read_items(BenchmarkSpec("mmlu", (str(mmlu),))))
    assert plain and list(read_items(BenchmarkSpec("mmlu", (str(packed),)))) == plain
    assert list(read_items(BenchmarkSpec("mmlu", evaluator="multiple_choice", options={"file": str(packed)})))
    broken = tmp_path / "broken.jsonl.gz"
    broken.write_bytes(gzip.compress(mmlu.read_bytes())[:-12])
    with pytest.raises(DecontamError, match=r"broken.jsonl.gz: not a readable gzip file") as err:
        list(read_items(BenchmarkSpec("b", (str(broken),))))
    assert "\n" not in str(err.value)

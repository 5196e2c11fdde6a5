"""A shortened recipe with every kind of stage, end to end in subprocesses: synth → decontam → pretrain →
SFT → eval → PTS → DPO → eval, then the table, recipe.json and recipe.png; a re-run skips everything.

The model memorises a few tiny chat problems in a few steps, so PTS finds real pivotal tokens (the
answer digit) within seconds and DPO has pairs to train on."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml

from phijax.recipe.run import DONE

from .conftest import REPO, phijax, write_recipe

# Each question is seen `copies` times: more copies, higher p(success), so some query lands in the band.
PROBLEMS = [
    ("Compute 2 + 3.", "5", 6),
    ("Compute 4 + 4.", "8", 3),
    ("Compute 1 + 6.", "7", 2),
    ("Compute 3 + 3.", "6", 1),
]
FAST = ["optim.warmup_steps=1", "train.log_every=1", "train.seq_len=64", "checkpoint.async_save=false"]


def write_inputs(tmp_path: Path) -> dict[str, Path]:
    """Seeds (with one leaked benchmark item), PTS problems and a quick eval config."""
    seeds = [{"question": q, "answer": f"Answer: {a}"} for q, a, copies in PROBLEMS for _ in range(copies)]
    leaked = json.loads((REPO / "configs/tiny/benchmarks/arithmetic_gsm8k.jsonl").read_text().splitlines()[0])
    files = {"seeds": tmp_path / "seeds.jsonl", "problems": tmp_path / "problems.jsonl", "eval": tmp_path / "eval.yaml"}
    files["seeds"].write_text("".join(json.dumps(s) + "\n" for s in [*seeds, leaked]))
    files["problems"].write_text("".join(json.dumps({"query": q, "answer": a}) + "\n" for q, a, _ in PROBLEMS))
    evaluation = {
        "policy": {"backend": "local", "tokenizer": "configs/tiny/tokenizer.json"},
        "mesh": {"data": 1, "fsdp": -1, "tensor": 1, "cpu_devices": 1},
        "evaluators": [
            {"name": "multiple_choice", "label": "mc", "file": "configs/tiny/benchmarks/arithmetic_mc.jsonl"}
        ],
    }
    files["eval"].write_text(yaml.safe_dump(evaluation))
    return files


def stages(files: dict[str, Path]) -> list[dict]:
    shards = "${stages.decontam}/input/*.jsonl"
    data = f"data.sources=[{{name: synthetic, source: jsonl, paths: ['{shards}'], text_field: messages}}]"
    return [
        {
            "name": "synth",
            "command": "synth",
            "config": ["configs/tiny/recipe-synth.yaml"],
            "overrides": [
                f"synth.stages=[{{generator: to_chat, input: '{files['seeds']}', output: '${{run_dir}}/chat'}}]"
            ],
        },
        {
            "name": "decontam",
            "command": "decontam",
            "args": [
                "--input",
                "${stages.synth}/chat/*.jsonl",
                "--text-field",
                "messages",
                "--processes",
                "1",
                "--benchmark",
                "gsm8k=configs/tiny/benchmarks/arithmetic_gsm8k.jsonl",
            ],
        },
        {
            "name": "pretrain",
            "command": "train",
            "config": ["configs/tiny/pretrain.yaml"],
            "overrides": [*FAST, data, "train.steps=40", "checkpoint.every=40"],
        },
        {
            "name": "sft",
            "command": "train",
            "config": ["configs/tiny/sft.yaml"],
            "overrides": [*FAST, data, "train.steps=10", "checkpoint.every=10"],
        },
        {"name": "eval-sft", "command": "eval", "config": [str(files["eval"])]},
        {
            "name": "pts",
            "command": "pts",
            "config": ["configs/tiny/recipe-pts.yaml"],
            "overrides": [
                f"problems={files['problems']}",
                "rollouts=8",
                "solutions=2",
                "band=[0.05, 0.95]",
                "max_new_tokens=8",
                "temperature=1.0",
            ],
        },
        {
            "name": "dpo",
            "command": "dpo",
            "config": ["configs/tiny/dpo.yaml"],
            "overrides": [
                "optim.warmup_steps=1",
                "train.log_every=1",
                "train.seq_len=64",
                "train.steps=2",
                "checkpoint.every=2",
                "checkpoint.async_save=false",
            ],
        },
        {"name": "eval-dpo", "command": "eval", "config": [str(files["eval"])]},
    ]


@pytest.mark.slow
def test_a_short_recipe_runs_every_stage_and_reports_them(tmp_path):
    root = tmp_path / "runs"
    recipe = write_recipe(tmp_path / "recipe.yaml", root, stages(write_inputs(tmp_path)))
    done = phijax("recipe", "--config", str(recipe))
    assert done.returncode == 0, done.stderr[-3000:]

    report = json.loads((root / "recipe.json").read_text())
    rows = {r["stage"]: r for r in report["stages"]}
    assert list(rows) == ["synth", "decontam", "pretrain", "sft", "eval-sft", "pts", "dpo", "eval-dpo"]
    assert all((root / name / DONE).is_file() for name in rows)
    assert rows["decontam"]["metrics"]["contaminated"] == 1, "the leaked benchmark item is dropped"
    assert rows["pretrain"]["steps"] == 40 and rows["pretrain"]["tokens"] == 40 * 8 * 64
    first = json.loads((root / "pretrain" / "metrics.jsonl").read_text().splitlines()[0])["loss"]
    assert rows["sft"]["final_loss"] < first / 2, "the problems were learnt"
    assert rows["pts"]["metrics"]["pairs"] > 0, f"PTS found no pairs: {rows['pts']['metrics']}"
    assert rows["dpo"]["steps"] == 2 and rows["dpo"]["final_loss"] is not None
    for name in ("eval-sft", "eval-dpo"):
        assert set(rows[name]["metrics"]) >= {"mc/acc", "mc/acc_norm"}
    dpo_config = yaml.safe_load((root / "dpo" / "config.yaml").read_text())
    assert dpo_config["dpo"]["pairs"] == [f"{root}/pts/pairs.jsonl"]
    assert dpo_config["checkpoint"]["init_from"] == f"{root}/sft"
    for stage, table_cell in (("pts", "pairs"), ("eval-dpo", "mc/acc"), ("pretrain", "40")):
        assert any(line.startswith(stage) and table_cell in line for line in done.stdout.splitlines())

    import matplotlib.image

    image = matplotlib.image.imread(root / "recipe.png")
    assert image.ndim == 3 and image.shape[0] > 300 and image.shape[1] > 800 and image.std() > 0.01

    again = phijax("recipe", "--config", str(recipe), timeout=60)
    assert again.returncode == 0 and again.stderr.count("done, skipped") == len(rows), again.stderr[-2000:]


if __name__ == "__main__":  # pragma: no cover - a manual run prints the stages' commands
    print(yaml.safe_dump(stages(write_inputs(Path(sys.argv[1])))))

"""Preference pairs from the arithmetic curriculum, and small DPO configs on the tiny model."""

import json
from pathlib import Path

import pytest

from phijax.data.curriculum import make_problem
from phijax.data.pipeline import tokenizer_for
from phijax.train.config import load_train_job

REPO = Path(__file__).resolve().parents[3]
TINY_DPO = REPO / "configs" / "tiny" / "dpo.yaml"
TOKENIZER = REPO / "configs" / "tiny" / "tokenizer.json"


def wrong_digit(digit: str) -> str:
    return str((int(digit) + 1) % 10)


def pts_style_pairs(count: int, seed: int = 0) -> list[dict]:
    """Single-token pairs as PTS writes them: after `...Answer: `, the correct first digit is chosen
    and a wrong digit rejected; the prompt is the templated question plus the worked solution."""
    tok = tokenizer_for(str(TOKENIZER))
    records = []
    for i in range(count):
        problem = make_problem(seed, i)
        cut = problem.solution.rindex("Answer: ") + len("Answer: ")
        prompt, _ = tok.format_chat([{"role": "user", "content": problem.question}], add_generation_prompt=True)
        prompt += tok.encode(problem.solution[:cut])
        chosen, rejected = tok.encode(problem.answer[0])[0], tok.encode(wrong_digit(problem.answer[0]))[0]
        records.append({"prompt_ids": prompt, "chosen_id": chosen, "rejected_id": rejected})
    return records


def whole_response_pairs(count: int, seed: int = 0) -> list[dict]:
    """Text pairs `{prompt, chosen, rejected}`: the question, the right and a wrong final answer."""
    records = []
    for i in range(count):
        problem = make_problem(seed, i)
        wrong = wrong_digit(problem.answer[0]) + problem.answer[1:]
        records.append(
            {"prompt": problem.question, "chosen": f"Answer: {problem.answer}", "rejected": f"Answer: {wrong}"}
        )
    return records


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def dpo_overrides(run_dir, pairs, **extra) -> list[str]:
    values = {
        "run_dir": str(run_dir),
        "dpo.pairs": f"[{pairs}]",
        "checkpoint.init_from": "null",
        "train.steps": 4,
        "train.seq_len": 64,
        "train.log_every": 1,
        "checkpoint.every": 2,
        "optim.warmup_steps": 0,
        "optim.peak_lr": 1e-3,
        **extra,
    }
    return [f"{k}={v}" for k, v in values.items()]


def dpo_config(run_dir, pairs, **extra):
    return load_train_job([TINY_DPO], dpo_overrides(run_dir, pairs, **extra))


def metrics(run_dir) -> dict[int, dict]:
    """step → logged record of metrics.jsonl (the last line of a step logged twice)."""
    out = {}
    for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines():
        record = json.loads(line)
        out[record["step"]] = record
    return out


@pytest.fixture(scope="session")
def pts_pairs_file(tmp_path_factory) -> Path:
    return write_jsonl(tmp_path_factory.mktemp("pairs") / "pts.jsonl", pts_style_pairs(16))


@pytest.fixture(scope="session")
def whole_pairs_file(tmp_path_factory) -> Path:
    return write_jsonl(tmp_path_factory.mktemp("pairs") / "whole.jsonl", whole_response_pairs(16))

"""End to end on the curriculum: pretrain the tiny model → `phijax pts` → DPO on its pairs.

The policy is trained for 400 steps on curriculum additions (about 2 minutes on 2 cores, hence
`slow`); fewer steps leave every query below the success band. PTS then runs on the easiest
additions (two digits plus one, no carry) at temperature 0.5, where that model's success rate
lands inside the paper's band [0.2, 0.8] for some queries and outside it for others.
"""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import pytest

from phijax.cli import main
from phijax.data.curriculum import addition
from phijax.train.config import load_train_job
from phijax.train.trainer import train

from .conftest import TINY_DPO, metrics

REPO = Path(__file__).resolve().parents[3]
TINY_PRETRAIN = REPO / "configs" / "tiny" / "pretrain.yaml"
TINY_PTS = REPO / "configs" / "tiny" / "pts.yaml"
ROLLOUTS, SOLUTIONS = 16, 2


def easy_additions(count: int, seed: int) -> list[dict]:
    """`count` problems a + b with a of two digits, b of one, and no carry."""
    rng, problems = random.Random(seed), []
    while len(problems) < count:
        a, b = rng.randrange(10, 100), rng.randrange(1, 10)
        if a % 10 + b < 10:
            problem = addition(a, b)
            problems.append({"id": f"{a}+{b}", "query": problem.question, "answer": problem.answer})
    return problems


@pytest.fixture(scope="module")
def policy_run(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("pretrain") / "run"
    overrides = {
        "run_dir": str(run_dir),
        "train.steps": 400,
        "train.log_every": 100,
        "checkpoint.every": 400,
        "data.sources": "[{name: addition, source: curriculum, kinds: [addition], seed: 0}]",
    }
    train(load_train_job([TINY_PRETRAIN], [f"{k}={v}" for k, v in overrides.items()]))
    return run_dir


@pytest.mark.slow
def test_pts_pairs_from_a_trained_policy_feed_a_dpo_run(tmp_path, policy_run):
    problems = tmp_path / "problems.jsonl"
    problems.write_text("".join(json.dumps(p) + "\n" for p in easy_additions(12, seed=7)))
    pairs = tmp_path / "pts" / "pairs.jsonl"
    assert (
        main(
            [
                "pts",
                "--config",
                str(TINY_PTS),
                f"policy.checkpoint={policy_run}",
                f"problems={problems}",
                f"output={pairs}",
                f"rollouts={ROLLOUTS}",
                f"solutions={SOLUTIONS}",
            ]
        )
        == 0
    )

    summary = json.loads(pairs.with_suffix(".summary.json").read_text())
    records = [json.loads(line) for line in pairs.read_text().splitlines()]
    assert summary["problems"] == 12 and len(records) == summary["pairs"] >= 1
    assert summary["below_band"] + summary["in_band"] + summary["above_band"] == 12
    assert summary["in_band"] < 12  # the band filter dropped queries this policy never / always solves
    assert summary["solutions"] == SOLUTIONS * summary["in_band"]
    assert summary["rollouts"] == ROLLOUTS * summary["estimates"]  # monte_carlo: one batch per estimate
    for record in records:  # pairs only from queries inside the band, each a real preference
        assert 0.2 <= summary["query_success"][record["problem_index"]] <= 0.8
        assert record["p_chosen"] - record["p_rejected"] > 0 and record["chosen_id"] != record["rejected_id"]

    dpo_run = tmp_path / "dpo"
    overrides = {
        "run_dir": str(dpo_run),
        "dpo.pairs": f"[{pairs}]",
        "checkpoint.init_from": str(policy_run),
        "train.steps": 4,
        "train.log_every": 1,
        "checkpoint.every": 4,
    }
    assert main(["dpo", "--config", str(TINY_DPO), *[f"{k}={v}" for k, v in overrides.items()]]) == 0
    logged = metrics(dpo_run)
    assert sorted(logged) == [1, 2, 3, 4] and all(math.isfinite(m["loss"]) for m in logged.values())
    assert (dpo_run / "checkpoints" / "4").is_dir()

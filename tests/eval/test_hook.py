"""Evaluation during training: `train.eval` runs a native evaluator every N steps of a real tiny run
(`trained_run`) and its metrics land in metrics.jsonl at exactly those steps."""

from __future__ import annotations

import json
from pathlib import Path

from .conftest import EVAL_EVERY, TRAIN_STEPS


def test_train_eval_logs_evaluator_metrics_every_n_steps(trained_run: Path) -> None:
    logged: dict[int, dict] = {}
    for line in (trained_run / "metrics.jsonl").read_text().splitlines():
        record = json.loads(line)
        logged.setdefault(record["step"], {}).update(record)
    assert set(logged) == set(range(1, TRAIN_STEPS + 1))
    with_eval = {step for step, record in logged.items() if "eval/multiple_choice/acc" in record}
    assert with_eval == set(range(EVAL_EVERY, TRAIN_STEPS + 1, EVAL_EVERY))
    for step in with_eval:
        assert 0.0 <= logged[step]["eval/multiple_choice/acc"] <= 1.0
        assert logged[step]["eval/multiple_choice/acc_stderr"] >= 0.0

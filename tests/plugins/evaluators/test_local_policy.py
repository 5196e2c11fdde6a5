"""The one integration test: native evaluators drive the real `LocalPolicy` on the tiny model (random
weights, CPU) and score exactly what the policy's own protocol calls give."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from flax import nnx

from phijax.data import load_tokenizer
from phijax.inference.policy import LocalPolicy
from phijax.model.config import preset_config
from phijax.model.phi4 import Phi4
from phijax.plugins.registry import get_registry

ROOT = Path(__file__).resolve().parents[3]
BENCHMARKS = ROOT / "configs" / "tiny" / "benchmarks"


@pytest.fixture(scope="module")
def policy():
    model = Phi4(preset_config("tiny"), rngs=nnx.Rngs(0))
    return LocalPolicy(model, load_tokenizer(str(ROOT / "configs" / "tiny" / "tokenizer.json")))


def test_multiple_choice_on_the_tiny_benchmark_equals_a_direct_computation(policy):
    file = BENCHMARKS / "arithmetic_mc.jsonl"
    result = get_registry().create("evaluators", "multiple_choice", file=str(file), limit=6)(policy, seed=0)
    rows = [json.loads(line) for line in file.read_text().splitlines()][:6]
    requests = [(f"{r['question']}\nAnswer:", f" {c}") for r in rows for c in r["choices"]]
    scores = [ll for ll, _ in policy.loglikelihood(requests)]
    acc = []
    for i, row in enumerate(rows):
        lls = scores[4 * i : 4 * i + 4]
        acc.append(lls.index(max(lls)) == row["answer"])
    assert result.metrics["acc"] == pytest.approx(sum(acc) / len(rows))
    assert [ll for s in result.samples for ll in s["loglikelihoods"]] == pytest.approx(scores, abs=1e-4)


def test_generative_evaluators_score_the_policy_s_own_greedy_texts(policy):
    registry = get_registry()
    curriculum = registry.create(
        "evaluators", "curriculum", count=3, seed=2, max_digits=2, prompt_format="text", max_new_tokens=4
    )
    result = curriculum(policy, seed=0)
    direct = policy.generate([curriculum.prompt(p) for p in curriculum.problems], max_new_tokens=4, chat=False)
    assert [s["response"] for s in result.samples] == [texts[0] for texts in direct]
    assert result.metrics["accuracy"] == 0.0  # random weights
    gsm = registry.create(
        "evaluators", "exact_match", file=str(BENCHMARKS / "arithmetic_gsm8k.jsonl"), limit=2, shots=1, max_new_tokens=4
    )
    assert set(gsm(policy, seed=0).metrics) == {"exact_match"}

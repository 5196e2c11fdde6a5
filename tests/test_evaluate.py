"""Greedy accuracy: every problem judged once on its greedy response, by the given verifier."""

from __future__ import annotations

from pathlib import Path

from flax import nnx

from phijax.data.pipeline import tokenizer_for
from phijax.evaluate import curriculum_accuracy, greedy_accuracy
from phijax.generate import ModelPolicy
from phijax.model.phi4 import Phi4
from phijax.model.presets import preset_config
from phijax.pts.driver import prompt_encoder

TOKENIZER = tokenizer_for(str(Path(__file__).resolve().parents[1] / "configs" / "tiny" / "tokenizer.json"))


def test_accuracy_is_the_share_of_greedy_responses_the_verifier_accepts():
    policy = ModelPolicy(Phi4(preset_config("tiny"), rngs=nnx.Rngs(0)), TOKENIZER)
    problems = [{"query": f"Compute {a} + 1.", "answer": str(a + 1)} for a in range(10, 15)]
    seen = []

    def verifier(response: str, problem: dict) -> bool:
        seen.append(problem["query"])
        return problem["answer"] in ("11", "13")

    accuracy = greedy_accuracy(policy, problems, prompt_ids=prompt_encoder(TOKENIZER, "text"),
                               verifier=verifier, max_new_tokens=4, batch=2)
    assert accuracy == 2 / 5 and seen == [p["query"] for p in problems]
    assert curriculum_accuracy(policy, 3, seed=2, max_digits=2, prompt_format="chat", max_new_tokens=4) == 0.0

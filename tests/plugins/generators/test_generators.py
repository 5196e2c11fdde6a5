"""Control flow of each built-in generator, against a deterministic fake policy."""

from __future__ import annotations

import re

import pytest
from phijax_plugins.generators.instruction_reversal import InstructionReversal, similarity
from phijax_plugins.generators.plurality_filter import PluralityFilter
from phijax_plugins.generators.qa_extraction import QAExtraction
from phijax_plugins.generators.rewrite import Rewrite
from phijax_plugins.generators.seed_curation import SeedCuration, cut_passages
from phijax_plugins.generators.self_revision import SelfRevision
from phijax_plugins.generators.to_chat import ToChat

from phijax.synth import PROVENANCE, REJECTED, SynthError
from phijax.synth.testing import FakePolicy


def _run(gen, seeds, policy=None):
    return list(gen(seeds, policy=policy, seed=7))


def _kept(out):
    return [r for r in out if REJECTED not in r]


def _rejections(out):
    return sorted(r[REJECTED] for r in out if REJECTED in r)


def test_rewrite_plans_then_writes_one_record_per_form():
    def respond(prompt, j, seed):
        return (
            "PLAN: use the fact"
            if prompt.rstrip().endswith("Plan:")
            else f"written from [{prompt.split('Plan:')[1][:20]}]"
        )

    policy = FakePolicy(respond)
    out = _run(Rewrite(forms=["exercise", "discussion"]), [{"text": "Water boils at 100 C at sea level."}], policy)
    assert [r["form"] for r in out] == ["exercise", "discussion"]
    assert all("PLAN: use the fact" in r["text"] for r in out)  # the write step saw the plan
    assert len(policy.calls) == 4 and all(r[PROVENANCE]["template_hash"] for r in out)


def _critic(scores_by_round):
    """A policy whose k-th critique gives scores_by_round[k]; drafts and revisions say which round made them."""

    def respond(prompt, j, seed):
        found = re.search(r"draft (\d)", prompt)
        if "strict reviewer" in prompt:
            reasoning, facts = scores_by_round[int(found.group(1))]
            return f"Too short.\nreasoning: {reasoning}\nfactual accuracy: {facts}"
        if "Rewrite the answer" in prompt:
            return f"draft {int(found.group(1)) + 1}"
        return "draft 0"

    return FakePolicy(respond)


def test_self_revision_stops_when_every_score_reaches_the_threshold():
    policy = _critic([(2, 5), (4, 3), (5, 4), (5, 5)])
    [record] = _run(SelfRevision(threshold=4, max_rounds=5), [{"prompt": "Why is the sky blue?"}], policy)
    assert record["text"] == "draft 2" and record["rounds"] == 3
    assert record["scores"] == {"reasoning": 5.0, "factual_accuracy": 4.0}
    assert len(policy.calls) == 1 + 3 + 2  # draft, 3 critiques, 2 revisions: no round after the rubric is met


def test_self_revision_rejects_after_max_rounds_unless_kept():
    scores = [(1, 1)] * 4
    assert _rejections(_run(SelfRevision(max_rounds=2), [{"prompt": "q"}], _critic(scores))) == ["rubric_unmet"]
    [kept] = _run(SelfRevision(max_rounds=2, keep_unmet=True), [{"prompt": "q"}], _critic(scores))
    assert kept["rounds"] == 2 and kept["text"] == "draft 1"


ORIGINAL = "def add(a, b):\n    # sum\n    return a + b\n"


def test_instruction_reversal_keeps_faithful_code_and_drops_a_low_similarity_pair():
    def respond(prompt, j, seed):
        if "Write the instruction" in prompt:
            return "Write add(a, b) returning the sum." if "add" in prompt else "Write mul."
        if "add(a, b)" in prompt:
            return "```python\ndef add(a, b):\n    return a + b\n```"
        return "```python\nclass Matrix:\n    pass\n```"

    seeds = [{"id": "a", "code": ORIGINAL}, {"id": "m", "code": "def mul(x, y):\n    return x * y\n"}]
    out = _run(InstructionReversal(threshold=0.8), seeds, FakePolicy(respond))
    [kept] = _kept(out)
    assert kept["prompt"] == "Write add(a, b) returning the sum." and kept["similarity"] == 1.0
    assert _rejections(out) == ["low_similarity"]


def test_similarity_ignores_comments_and_layout_but_not_code():
    assert similarity(ORIGINAL, "def add(a,b): return a+b") == 1.0
    assert similarity(ORIGINAL, "def add(a, b):\n    return a - b\n") < 1.0


def test_plurality_keeps_exactly_the_questions_inside_the_band_with_their_labels():
    answers = {
        "easy": ["4"] * 4,
        "hard": ["1", "2", "3", "5"],
        "mid": ["7", "7", "7", "8"],
        "half": ["9", "9", "2", "3"],
    }

    def respond(prompt, j, seed):
        return f"Working...\nAnswer: {answers[prompt.split()[0]][j]}"

    seeds = [{"prompt": f"{q} question"} for q in answers]
    out = _run(PluralityFilter(n=4, min_agreement=0.5, max_agreement=0.9), seeds, FakePolicy(respond))
    kept = {r["prompt"].split()[0]: (r["answer"], r["agreement"]) for r in _kept(out)}
    assert kept == {"mid": ("7", 0.75), "half": ("9", 0.5)}
    assert _rejections(out) == ["too_easy", "too_hard"]


def test_qa_extraction_keeps_grounded_pairs_only():
    reply = (
        "Question: Why does ice float?\nReasoning: Water expands when freezing, so ice density is lower.\n"
        "Answer: It is less dense.\n\nQuestion: Who is king?\nReasoning: Monarchy tradition dictates "
        "succession lineage.\nAnswer: Nobody."
    )
    passage = "When water freezes it expands; the density of ice is therefore lower than water, so ice floats."
    out = _run(QAExtraction(min_grounding=0.6), [{"id": "p1", "text": passage}], FakePolicy(lambda p, j, s: reply))
    [pair] = _kept(out)
    assert (
        pair["prompt"] == "Why does ice float?" and pair["answer"] == "It is less dense." and pair["passage_id"] == "p1"
    )
    assert _rejections(out) == ["ungrounded"]


def test_seed_curation_keeps_passages_scored_above_the_threshold():
    doc = "deep " * 50 + "\n\n" + "shallow " * 50

    def respond(prompt, j, seed):
        return "reasoning: 5\neducational: 4" if "deep" in prompt else "reasoning: 1\neducational: 2"

    out = _run(SeedCuration(threshold=3.5, chunk_chars=300, min_chars=100), [{"text": doc}], FakePolicy(respond))
    [kept] = _kept(out)
    assert kept["text"].startswith("deep") and kept["scores"] == {"reasoning": 5.0, "educational": 4.0}
    assert _rejections(out) == ["low_score"]
    assert len(cut_passages("def a():\n  pass\ndef b():\n  pass\n", 20, code=True)) == 2


def test_to_chat_makes_messages_and_rejects_records_without_both_turns():
    out = _run(ToChat(system="Be brief."), [{"prompt": "2+2?", "text": "4"}, {"text": "only text"}])
    assert _kept(out)[0]["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "2+2?"},
        {"role": "assistant", "content": "4"},
    ]
    assert _rejections(out) == ["missing_field"]


def test_template_override_by_path_and_a_missing_variable_is_one_line(tmp_path):
    good = tmp_path / "plan.txt"
    good.write_text("PLAN {{form}} FOR {{seed}}")
    policy = FakePolicy(lambda p, j, s: p)
    out = _run(Rewrite(forms=["quiz"], templates={"plan": str(good)}), [{"text": "x { y }"}], policy)
    assert policy.calls[0][0] == "PLAN quiz FOR x { y }" and len(out) == 1
    bad = tmp_path / "bad.txt"
    bad.write_text("{{seed}} {{colour}}")
    with pytest.raises(SynthError, match=r"uses \{\{colour\}\}.*fix the template") as err:
        Rewrite(templates={"plan": str(bad)})
    assert "\n" not in str(err.value)
    with pytest.raises(SynthError, match="unknown template role"):
        Rewrite(templates={"plot": str(good)})

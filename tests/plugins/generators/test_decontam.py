"""The `decontam` stage: contaminated synthetic records are counted and never written; clean ones pass."""

from __future__ import annotations

import json

import pytest
from phijax_plugins.generators.decontam import Decontam

from phijax.config.loader import load_job
from phijax.data.decontam import check as decontam_check
from phijax.errors import PhijaxError
from phijax.plugins.registry import get_registry
from phijax.synth import REJECTED
from phijax.synth.config import SynthJob
from phijax.synth.run import iter_records, run_synth
from phijax.synth.testing import FakePolicy

LONG = "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May."
SHORT = "What is the boiling point of water at sea level"  # 10 words: no 13-gram, caught by the 7-gram ratio


@pytest.fixture
def bench(tmp_path):
    path = tmp_path / "gsm8k.jsonl"
    rows = [{"id": "g-long", "question": LONG, "answer": "72"}, {"id": "g-short", "question": SHORT, "answer": "100"}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _benchmarks(bench):
    return [{"name": "gsm8k", "paths": [str(bench)]}]


def _run(gen, seeds):
    return list(gen(seeds, policy=None, seed=0))


def test_clean_records_pass_unchanged_and_contaminated_ones_are_rejected_by_reason(bench):
    gen = Decontam(benchmarks=_benchmarks(bench))
    seeds = [
        {"prompt": "Write a story.", "text": "Once there was a quiet lake in the hills."},
        {"prompt": "Retell this.", "text": f"So: {LONG.upper()} Done."},
        {"question": SHORT + "?", "answer": "100 degrees"},
        {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello there."}]},
    ]
    out = _run(gen, seeds)
    assert out == [seeds[0], {REJECTED: "contaminated_13gram"}, {REJECTED: "contaminated_7gram"}, seeds[3]]


def test_chat_turns_are_checked_as_one_text_without_role_names(bench):
    """A copy split across the user and assistant turns is still one 13-gram of the training text."""
    words = LONG.split()
    messages = [
        {"role": "user", "content": " ".join(words[:8])},
        {"role": "assistant", "content": " ".join(words[8:])},
    ]
    assert _run(Decontam(benchmarks=_benchmarks(bench)), [{"messages": messages}]) == [
        {REJECTED: "contaminated_13gram"}
    ]


def test_text_fields_limit_what_is_checked(bench):
    gen = Decontam(benchmarks=_benchmarks(bench), text_fields=["response"])
    seeds = [{"source": LONG, "response": "A fresh answer of our own."}, {"source": LONG}]
    assert _run(gen, seeds) == [seeds[0], {REJECTED: "missing_field"}]


def test_thresholds_are_the_decontaminate_settings(bench):
    partial = {"text": "Water question: what is the boiling point of water. Unrelated tail words follow here."}
    strict = Decontam(benchmarks=_benchmarks(bench), contaminated_ratio=0.0, info_ratio=0.0)
    assert _run(strict, [partial]) == [{REJECTED: "contaminated_7gram"}]
    assert _run(Decontam(benchmarks=_benchmarks(bench)), [partial]) == [partial]  # partial: reported, kept


@pytest.mark.parametrize(
    "options, message",
    [
        ({}, "decontam: no benchmarks to check against"),
        ({"benchmarks": [{"name": "b", "paths": ["nope.jsonl"]}]}, "no file matches"),
        ({"benchmarks": [], "treshold": 0.3}, "unknown key `treshold`"),
    ],
)
def test_bad_options_stop_the_stage_in_one_line(options, message):
    with pytest.raises(PhijaxError) as err:
        get_registry().create("synthetic_generators", "decontam", **options)
    assert message in str(err.value) and "\n" not in str(err.value) and "decontam" in str(err.value)


def _job(tmp_path, stages):
    overrides = [f"synth.stages={json.dumps(stages)}", f"synth.cache_dir={tmp_path / 'cache'}", "synth.progress=false"]
    return load_job(SynthJob, [], overrides)


def test_a_stage_writes_all_but_the_planted_record_and_counts_it(tmp_path, bench, monkeypatch):
    builds = []
    real_build = decontam_check.build_index
    monkeypatch.setattr(decontam_check, "build_index", lambda *a, **k: builds.append(1) or real_build(*a, **k))
    seeds = tmp_path / "seeds.jsonl"
    rows = [{"id": f"s{i}", "text": f"Synthetic passage number {i} about lakes and hills."} for i in range(6)]
    rows[3]["text"] = "Leaked: " + LONG
    seeds.write_text("".join(json.dumps(r) + "\n" for r in rows))
    stage = {"generator": "decontam", "input": str(seeds), "output": str(tmp_path / "clean")}
    [summary] = run_synth(_job(tmp_path, [{**stage, "benchmarks": _benchmarks(bench)}]), policy=None)
    written = list(iter_records(tmp_path / "clean"))
    assert sorted(r["provenance"]["seed_id"] for r in written) == ["s0", "s1", "s2", "s4", "s5"]
    assert all("Leaked" not in r["text"] for r in written) and summary.records_out == 5
    assert summary.rejected == {"contaminated_13gram": 1} and summary.requests == 0
    on_disk = json.loads((tmp_path / "clean" / "_synth" / "summary.json").read_text())
    assert on_disk["rejected"] == {"contaminated_13gram": 1}
    assert builds == [1]  # one index for the stage, not one per record


def test_synthetic_output_is_checked_before_the_chat_records_are_written(tmp_path, bench):
    """rewrite (fake policy, which leaks a benchmark item for one seed) -> decontam -> to_chat."""

    def respond(prompt, j, seed):
        if prompt.rstrip().endswith("Plan:"):
            return "PLAN: keep it short"
        return f"As the test says: {LONG}" if "passage 2" in prompt else "A lake sits between two hills."

    seeds = tmp_path / "seeds.jsonl"
    seeds.write_text("".join(json.dumps({"text": f"passage {i}"}) + "\n" for i in range(4)))
    stages = [
        {"generator": "rewrite", "input": str(seeds), "output": str(tmp_path / "rw"), "forms": ["exercise"]},
        {"generator": "decontam", "input": str(tmp_path / "rw"), "output": str(tmp_path / "clean")},
        {
            "generator": "to_chat",
            "input": str(tmp_path / "clean"),
            "output": str(tmp_path / "chat"),
            "user_fields": ["form"],
        },
    ]
    stages[1]["benchmarks"] = _benchmarks(bench)
    summaries = run_synth(_job(tmp_path, stages), policy=FakePolicy(respond))
    assert [s.records_out for s in summaries] == [4, 3, 3]
    assert summaries[1].rejected == {"contaminated_13gram": 1}
    chats = list(iter_records(tmp_path / "chat"))
    assert all(LONG not in m["content"] for r in chats for m in r["messages"])
    assert {r["provenance"]["parent"]["generator"] for r in chats} == {"decontam"}


def test_the_tiny_synth_config_decontaminates_its_chat_records_against_the_tiny_benchmarks():
    job = load_job(SynthJob, ["configs/tiny/synth.yaml"])
    stage = job.synth.stages[-1]
    assert stage.generator == "decontam" and stage.input == job.synth.stages[-2].output
    gen = get_registry().create("synthetic_generators", "decontam", **stage.options)
    assert gen.decontaminator.index.stats["items"] == 32  # both configs/tiny/benchmarks files
    leaked = {"messages": [{"role": "user", "content": "Tom has 36 apples and gets 11 more. How many apples does Tom"}]}
    assert _run(gen, [leaked]) == [{REJECTED: "contaminated_13gram"}]

"""The stage runner: provenance, caching, resume after kills, failures, and one-line errors."""

from __future__ import annotations

import json
import threading

import pytest

from phijax.cli import main
from phijax.config.loader import load_job
from phijax.synth import RequestFailed, SynthError
from phijax.synth.cache import RequestCache
from phijax.synth.config import SynthJob
from phijax.synth.run import iter_records, run_synth
from phijax.synth.shards import shard_paths
from phijax.synth.testing import FakePolicy


def _seeds(path, n):
    path.write_text("".join(json.dumps({"prompt": f"q{i}", "text": f"passage {i}"}) + "\n" for i in range(n)))
    return path


def _overrides(tmp_path, stages, **synth):
    overrides = [f"synth.stages={json.dumps(stages)}", f"synth.cache_dir={tmp_path / 'cache'}", "synth.progress=false"]
    return overrides + [f"synth.{k}={json.dumps(v)}" for k, v in synth.items()]


def _job(tmp_path, stages, **synth):
    return load_job(SynthJob, [], _overrides(tmp_path, stages, **synth))


def _answer(prompt, j, seed):
    return f"Answer: {len(prompt) % 3}" if "step by step" in prompt else f"reply to {prompt[:12]}"


def test_stages_chain_write_provenance_and_a_rerun_pays_nothing(tmp_path, capsys):
    seeds = _seeds(tmp_path / "seeds.jsonl", 6)
    stages = [
        {"generator": "rewrite", "input": str(seeds), "output": str(tmp_path / "rw"), "forms": ["exercise"]},
        {
            "generator": "to_chat",
            "input": str(tmp_path / "rw"),
            "output": str(tmp_path / "chat"),
            "user_fields": ["form"],
        },
    ]
    policy = FakePolicy(_answer)
    first = run_synth(_job(tmp_path, stages), policy=policy)
    assert [s.records_out for s in first] == [6, 6] and first[0].requests == 12 and first[0].cache_hits == 0
    record = next(iter_records(tmp_path / "chat"))
    prov = record["provenance"]
    assert set(prov) >= {"generator", "options_hash", "seed_id", "backend", "model", "template_hash", "sample_index"}
    assert prov["generator"] == "to_chat" and prov["parent"]["generator"] == "rewrite"
    assert prov["parent"]["backend"] == "fake" and prov["parent"]["model"] == "model"
    assert record["messages"][1]["role"] == "assistant"
    assert "rw (rewrite): seeds 6" in capsys.readouterr().err
    calls = len(policy.calls)
    again = run_synth(_job(tmp_path, stages), policy=policy)
    assert [s.already_done for s in again] == [6, 6] and [s.records_out for s in again] == [0, 0]
    assert len(policy.calls) == calls
    for out in ("rw", "chat"):  # nothing is lost, nothing duplicated
        shutil_clear = [p for p in shard_paths(tmp_path / out)]
        assert shutil_clear
    # a fresh output dir reuses the cache: every request is a hit
    stages[0]["output"] = str(tmp_path / "rw2")
    [redo, _] = run_synth(_job(tmp_path, stages), policy=policy)
    assert redo.requests == 0 and redo.cache_hits == 12 and len(policy.calls) == calls


def test_resume_drops_torn_and_partial_seed_groups_and_redoes_them(tmp_path):
    seeds = _seeds(tmp_path / "seeds.jsonl", 4)
    stages = [
        {
            "generator": "rewrite",
            "input": str(seeds),
            "output": str(tmp_path / "out"),
            "forms": ["exercise", "discussion"],
        }
    ]
    run_synth(_job(tmp_path, stages), policy=FakePolicy(_answer))
    [shard] = shard_paths(tmp_path / "out")
    lines = shard.read_text().splitlines(keepends=True)
    shard.write_text("".join(lines[:5]) + lines[5][:30])  # seed 3 half written, its second record torn
    (tmp_path / "out" / "_synth" / "done.jsonl").write_text("")
    [summary] = run_synth(_job(tmp_path, stages), policy=FakePolicy(_answer))
    assert summary.already_done == 2 and summary.records_out == 4
    records = list(iter_records(tmp_path / "out"))
    keys = [(r["provenance"]["seed_id"], r["provenance"]["index"]) for r in records]
    assert len(keys) == len(set(keys)) == 8


def test_failed_seeds_are_counted_then_the_stage_stops_past_max_failures(tmp_path):
    seeds = _seeds(tmp_path / "seeds.jsonl", 6)
    stages = [{"generator": "rewrite", "input": str(seeds), "output": str(tmp_path / "out"), "forms": ["exercise"]}]

    def flaky(prompt, j, seed):
        if "passage 1" in prompt or "passage 4" in prompt:
            raise RequestFailed("http_500")
        return "ok"

    [summary] = run_synth(_job(tmp_path, stages, max_failures=2, concurrency=2), policy=FakePolicy(flaky))
    assert summary.failed == {"http_500": 2} and summary.records_out == 4
    with pytest.raises(SynthError, match=r"2 seeds failed \(http_500 2\), more than max_failures=1"):
        run_synth(_job(tmp_path, stages, max_failures=1), policy=FakePolicy(flaky))
    [healed] = run_synth(_job(tmp_path, stages), policy=FakePolicy(lambda p, j, s: "ok"))
    assert healed.already_done == 4 and healed.records_out == 2 and len(list(iter_records(tmp_path / "out"))) == 6


def test_missing_capability_stops_before_any_request(tmp_path):
    seeds = _seeds(tmp_path / "seeds.jsonl", 2)
    policy = FakePolicy(_answer, capabilities=frozenset())
    stages = [{"generator": "rewrite", "input": str(seeds), "output": str(tmp_path / "out")}]
    with pytest.raises(SynthError, match="needs the generate capability"):
        run_synth(_job(tmp_path, stages), policy=policy)
    assert policy.calls == []


@pytest.mark.parametrize(
    "case, expected",
    [
        ("unknown_generator", "unknown synthetic generator 'rewrit'"),
        ("bad_seed", r"seeds.jsonl:2: seed record is not valid JSON"),
        ("missing_var", r"uses \{\{colour\}\}"),
        ("unreachable", "cannot reach http://127.0.0.1:9/v1"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, case, expected):
    seeds = tmp_path / "seeds.jsonl"
    seeds.write_text('{"text": "a"}\n' + ('{"text": ' if case == "bad_seed" else '{"text": "b"}') + "\n")
    template = tmp_path / "t.txt"
    template.write_text("{{seed}} {{colour}}")
    stage = {
        "generator": "rewrit" if case == "unknown_generator" else "rewrite",
        "input": str(seeds),
        "output": str(tmp_path / "out"),
    }
    if case == "missing_var":
        stage["templates"] = {"plan": str(template)}
    policy = {"backend": "openai", "base_url": "http://127.0.0.1:9/v1", "model": "m", "timeout_s": 2}
    if case == "bad_seed":
        stage["generator"] = "to_chat"
    config = tmp_path / "synth.yaml"
    config.write_text(json.dumps({"policy": policy, "synth": {"stages": [stage], "cache_dir": str(tmp_path / "c")}}))
    assert main(["synth", "--config", str(config)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert any(__import__("re").search(expected, line) for line in err), err
    assert err[-1].startswith("phijax: error:")


def test_cache_ignores_a_torn_last_record_and_takes_concurrent_writers(tmp_path):
    writers = [RequestCache(tmp_path) for _ in range(3)]

    def fill(w, k):
        for i in range(200):
            w.put(f"{k}-{i}", "x" * (i % 50))

    threads = [threading.Thread(target=fill, args=(w, k)) for k, w in enumerate(writers)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    for w in writers:
        w.close()
    with open(sorted(tmp_path.glob("*.jsonl"))[0], "ab") as f:
        f.write(b'{"k": "torn", "v": "hal')
    cache = RequestCache(tmp_path)
    assert len(cache) == 600 and cache.torn == 1 and cache.get("2-199") == "x" * 49 and cache.get("torn") is None


def test_records_are_written_in_seed_order_whatever_order_seeds_finish(tmp_path):
    """The recipe found fresh runs differing: records came out in completion order. Early seeds are made
    slowest here, so completion order is the reverse of seed order."""
    import time

    seeds = _seeds(tmp_path / "seeds.jsonl", 8)

    def slow_early(prompt, j, seed):
        number = int(prompt.split("passage ")[-1].split()[0]) if "passage " in prompt else 0
        time.sleep(0.02 * (8 - number))
        return f"reply {number}"

    stages = [{"generator": "rewrite", "input": str(seeds), "output": str(tmp_path / "rw"), "forms": ["exercise"]}]
    run_synth(_job(tmp_path, stages, concurrency=8), policy=FakePolicy(slow_early))
    seed_ids = [r["provenance"]["seed_id"] for r in iter_records(tmp_path / "rw")]
    assert len(seed_ids) == 8 and seed_ids == sorted(seed_ids, key=lambda s: int(s.rpartition(":")[2]))


def test_the_runner_sleeps_while_the_first_seed_in_line_is_slow(tmp_path):
    """Results are taken in seed order. The runner used to wait for *any* seed to finish, which returns at
    once while a later seed is already done, so it spun and took the interpreter lock from the request
    threads (bench_synth: 91% of the ideal rate; 97% without the spin). Both requests of seed 0 stall 1 s
    while the others finish; the runner's own thread must stay idle meanwhile."""
    import time

    seeds = _seeds(tmp_path / "seeds.jsonl", 6)

    def stall_first(prompt, j, seed):
        if "passage 0" in prompt:
            time.sleep(1.0)
        return "reply"

    stages = [{"generator": "rewrite", "input": str(seeds), "output": str(tmp_path / "rw"), "forms": ["exercise"]}]
    job = load_job(SynthJob, [], [*_overrides(tmp_path, stages, concurrency=3), "policy.backend=openai"])
    cpu = time.thread_time()
    run_synth(job, policy=FakePolicy(stall_first))  # not `local`: no batcher, the seeds run on their threads
    cpu = time.thread_time() - cpu
    assert len(list(iter_records(tmp_path / "rw"))) == 6
    assert cpu < 0.25, f"the runner's thread used {cpu:.2f} s of CPU during a 2 s stall: it polls"

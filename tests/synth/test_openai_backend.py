"""The `openai` backend against a fake OpenAI-compatible server on 127.0.0.1: probe, faults, keys, kills."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from phijax_plugins.backends_openai import make_openai_policy
from phijax_plugins.estimators import MonteCarloEstimator

from phijax.plugins.protocols import GENERATE, LOGLIKELIHOOD, TOKENS
from phijax.synth import RequestFailed, SynthError
from phijax.synth.run import iter_records
from phijax.synth.testing import FakeServer


def _policy(server, **options):
    return make_openai_policy(
        base_url=server.base_url, model="fake-model", **{"max_retries": 1, "timeout_s": 2, **options}
    )


def test_probe_finds_every_capability_of_a_full_server(server):
    policy = _policy(server)
    assert policy.capabilities == {GENERATE, LOGLIKELIHOOD, TOKENS} and all(policy.features.values())
    assert policy.generate(["hi"], max_new_tokens=8, num_samples=2) == [["hi #0", "hi #1"]]


def test_probe_of_a_limited_server_drops_capabilities_and_n():
    with FakeServer(n=False, token_ids=False, logprobs=False) as limited:
        policy = _policy(limited)
        assert policy.capabilities == {GENERATE} and not policy.features["n"]
        assert policy.generate(["hi"], max_new_tokens=8, num_samples=2, seed=5) == [["hi #0", "hi #0"]]
        assert [b.get("seed") for b in limited.bodies[-2:]] == [5, 6]  # one request per sample, distinct seeds
        with pytest.raises(SynthError, match="lacks the tokens capability"):
            policy.complete([1, 2], num_samples=1, max_new_tokens=2)


def test_unreachable_server_and_unknown_model_are_one_line():
    with pytest.raises(SynthError, match=r"cannot reach http://127.0.0.1:9/v1 .*fix policy.base_url"):
        make_openai_policy(base_url="http://127.0.0.1:9/v1", model="m", timeout_s=1)
    with FakeServer() as fake, pytest.raises(SynthError, match="model 'other' is not served"):
        make_openai_policy(base_url=fake.base_url, model="other")


@pytest.mark.parametrize("fault", ["500", "429", "malformed", "drop", "wrong_n", "timeout"])
def test_transient_faults_are_retried_within_limits(server, fault):
    policy = _policy(server, timeout_s=0.4)
    server.hang_s = 0.8
    server.faults = [fault]
    assert policy.generate(["hi"], max_new_tokens=8) == [["hi #0"]]
    server.faults = [fault, fault]  # max_retries=1: two faults exhaust the retries
    with pytest.raises(RequestFailed) as err:
        policy.generate(["hi"], max_new_tokens=8)
    expected = {"500": "http_500", "429": "http_429", "drop": "connection", "wrong_n": "wrong_choices"}
    assert err.value.reason == expected.get(fault, fault)


def test_429_honours_retry_after_and_other_4xx_are_not_retried(server):
    policy = _policy(server)
    server.retry_after = "0.6"
    server.faults = ["429"]
    start = time.monotonic()
    policy.generate(["hi"], max_new_tokens=8)
    assert time.monotonic() - start >= 0.6
    before = server.hits["/v1/chat/completions"]
    server.faults = ["400"]
    with pytest.raises(RequestFailed, match="http_400"):
        policy.generate(["hi"], max_new_tokens=8)
    assert server.hits["/v1/chat/completions"] == before + 1


def test_concurrency_bounds_requests_in_flight(server):
    server.latency_s = 0.05
    policy = _policy(server, concurrency=3)
    assert len(policy.generate([f"p{i}" for i in range(12)], max_new_tokens=4)) == 12
    assert server.max_in_flight == 3


def test_concurrency_bounds_one_prompt_calls_from_many_threads(server):
    """The stage runner's calls (one prompt each, from its own threads) skip the pool: still bounded."""
    server.latency_s = 0.05
    policy = _policy(server, concurrency=3)
    with ThreadPoolExecutor(max_workers=8) as pool:
        got = list(pool.map(lambda i: policy.generate([f"p{i}"], max_new_tokens=4), range(16)))
    assert len(got) == 16
    assert server.max_in_flight == 3


def test_api_key_comes_from_the_environment_and_is_never_shown(server, monkeypatch):
    monkeypatch.setenv("FAKE_KEY", "sk-secret-123")
    policy = _policy(server, api_key_env="FAKE_KEY")
    assert {k.lower(): v for k, v in server.headers[-1].items()}["authorization"] == "Bearer sk-secret-123"
    assert "sk-secret" not in repr(policy) + policy.name + json.dumps(policy.features)
    monkeypatch.delenv("FAKE_KEY")
    with pytest.raises(SynthError, match="environment variable FAKE_KEY"):
        _policy(server, api_key_env="FAKE_KEY")


def test_token_level_protocol_and_monte_carlo_rollouts_through_the_server(server):
    server.respond = lambda prompt, j, seed: "Answer: 4" if j % 2 == 0 else "Answer: 5"
    policy = _policy(server)
    prompt = policy.chat_prompt([{"role": "user", "content": "2+2?"}])
    assert policy.decode(policy.encode("abc")) == "abc" and policy.decode(prompt).endswith("<|assistant|>")
    estimate = MonteCarloEstimator(num_rollouts=4, max_new_tokens=16)(
        {"prompt_ids": prompt, "answer": "4"},
        prompt,
        policy=policy,
        seed=0,
        verifier=lambda completion, problem: completion.strip() == "Answer: 4",
    )
    assert estimate.probability == 0.5
    [(logp, greedy)] = policy.loglikelihood_ids([(policy.encode("ab"), policy.encode("cd"))])
    assert logp == pytest.approx(-1.0) and greedy


def test_sigkill_mid_stage_then_the_same_command_gives_every_record_once(tmp_path):
    seeds = tmp_path / "seeds.jsonl"
    seeds.write_text("".join(json.dumps({"id": f"s{i}", "text": f"seed {i}"}) + "\n" for i in range(60)))
    with FakeServer(latency_s=0.05) as fake:
        config = tmp_path / "synth.yaml"
        config.write_text(
            json.dumps(
                {
                    "policy": {"backend": "openai", "base_url": fake.base_url, "model": "fake-model", "concurrency": 4},
                    "synth": {
                        "cache_dir": str(tmp_path / "cache"),
                        "concurrency": 4,
                        "progress": False,
                        "stages": [
                            {
                                "generator": "rewrite",
                                "input": str(seeds),
                                "output": str(tmp_path / "out"),
                                "forms": ["exercise", "discussion"],
                            }
                        ],
                    },
                }
            )
        )
        command = [sys.executable, "-m", "phijax.cli", "synth", "--config", str(config)]
        proc = subprocess.Popen(command, stderr=subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(list((tmp_path / "out").glob("part-*.jsonl"))) == 0:
            time.sleep(0.05)
        time.sleep(0.4)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        partial = len(list(iter_records(tmp_path / "out"))) if (tmp_path / "out").exists() else 0
        assert 0 < partial < 120, "the kill should land mid-stage"
        done = subprocess.run(command, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
    records = list(iter_records(tmp_path / "out"))
    keys = sorted((r["provenance"]["seed_id"], r["provenance"]["index"]) for r in records)
    assert keys == sorted((f"s{i}", k) for i in range(60) for k in range(2))

"""`phijax pts`: problems → pairs JSONL that the DPO stage reads, summary counts, config errors.

The policy is scripted (no model): after a prompt it writes `Answer: <right>` or `Answer: <wrong>`,
so p(success) is exactly known for every prefix and the pairs and counts can be checked exactly.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from phijax.cli import main
from phijax.config import load_job
from phijax.data.pairs import PreferencePairs
from phijax.data.pipeline import tokenizer_for
from phijax.errors import ConfigError, PhijaxError
from phijax.plugins import hookimpl
from phijax.plugins.protocols import TokenPolicy
from phijax.pts.config import PTSJob
from phijax.pts.driver import prompt_encoder, run_pts, run_stop_tokens, summary_path

REPO = Path(__file__).resolve().parents[2]
TOKENIZER = tokenizer_for(str(REPO / "configs" / "tiny" / "tokenizer.json"))
ROLLOUTS, SOLUTIONS = 4, 2


class TokenizerPolicy:
    """The token-level half of a `TokenPolicy` over the tiny tokenizer (no model); records stop tokens."""

    capabilities = frozenset({"generate", "loglikelihood", "tokens"})
    name = "scripted"
    stop_tokens = (TOKENIZER.eos_id,)
    eot_token_id = TOKENIZER.eod_id

    def encode(self, text):
        return TOKENIZER.encode(text)

    def decode(self, ids):
        return TOKENIZER.decode(list(ids))

    def chat_prompt(self, messages):
        return TOKENIZER.format_chat(list(messages), add_generation_prompt=True)[0]

    def generate(self, prompts, **settings):
        raise NotImplementedError

    def loglikelihood(self, requests):
        raise NotImplementedError

    def loglikelihood_ids(self, requests):
        raise NotImplementedError


class ScriptedPolicy(TokenizerPolicy):
    """Continues each problem's prompt with its right answer on the rows `right_rows(n)` picks.

    `mode` by query: `mixed` (even rows right: p = 0.5 until the answers differ), `easy` (always
    right, p = 1), `hard` (always wrong, p = 0). `stops_seen`: the stop tokens each call was given.
    """

    def __init__(self, problems: list[dict], modes: dict[str, str]):
        self.stops_seen = set()
        encode = prompt_encoder(self, "chat")
        self.script = {
            tuple(encode(p)): (self._ids(p["answer"]), self._ids(p["wrong"]), modes[p["query"]]) for p in problems
        }

    @staticmethod
    def _ids(answer: str) -> list[int]:
        return TOKENIZER.encode(f"Answer: {answer}")

    def complete(
        self, prefix_ids, *, num_samples, max_new_tokens, temperature=1.0, top_p=1.0, seed=0, stop_tokens=None
    ):
        self.stops_seen.add(None if stop_tokens is None else tuple(stop_tokens))
        prompt = next(p for p in self.script if tuple(prefix_ids[: len(p)]) == p)
        right, wrong, mode = self.script[prompt]
        done = list(prefix_ids[len(prompt) :])
        rows = []
        for row in range(num_samples):
            wants_right = mode == "easy" or (mode == "mixed" and row % 2 == 0)
            target = right if wants_right else wrong
            if done != target[: len(done)]:  # the prefix already left this answer: follow the other
                target = wrong if wants_right else right
            rows.append(target[len(done) :][:max_new_tokens])
        return rows


PROBLEMS = [
    {"id": "mixed", "query": "Compute 40 + 2.", "answer": "42", "wrong": "52"},
    {"id": "easy", "query": "Compute 1 + 1.", "answer": "2", "wrong": "3"},
    {"id": "hard", "query": "Compute 9 + 9.", "answer": "18", "wrong": "28"},
]
MODES = {"Compute 40 + 2.": "mixed", "Compute 1 + 1.": "easy", "Compute 9 + 9.": "hard"}


def write_problems(path: Path, problems: list[dict]) -> Path:
    path.write_text("".join(json.dumps(p) + "\n" for p in problems))
    return path


def pts_config(tmp_path: Path, **extra):
    values = {
        "problems": str(write_problems(tmp_path / "problems.jsonl", PROBLEMS)),
        "output": str(tmp_path / "out" / "pairs.jsonl"),
        "rollouts": ROLLOUTS,
        "solutions": SOLUTIONS,
        "max_new_tokens": 16,
        **extra,
    }
    return load_job(PTSJob, [], [f"{k}={v}" for k, v in values.items()])


def run(tmp_path: Path, policy=None, **extra) -> dict:
    policy = policy or ScriptedPolicy(PROBLEMS, MODES)
    return run_pts(pts_config(tmp_path, **extra), policy=policy, log=lambda line: None)


def test_pairs_file_is_what_the_dpo_stage_reads(tmp_path, phijax_registry):
    phijax_registry()
    summary = run(tmp_path)
    pairs = PreferencePairs([summary["pairs_file"]], TOKENIZER, vocab_size=1024)
    # the right and the wrong solution give the same pair (same prefix, same rollouts): written once
    assert len(pairs) == summary["pairs"] == 1 and summary["duplicate_pairs"] == 1 and pairs.single_token
    prompt = prompt_encoder(TokenizerPolicy(), "chat")(PROBLEMS[0]) + TOKENIZER.encode("Answer: ")
    four, five = TOKENIZER.encode("4"), TOKENIZER.encode("5")
    assert pairs[0].prompt == tuple(prompt) and (pairs[0].chosen, pairs[0].rejected) == (tuple(four), tuple(five))
    record = json.loads(Path(summary["pairs_file"]).read_text().splitlines()[0])
    assert (record["p_before"], record["p_chosen"], record["p_rejected"]) == (0.5, 1.0, 0.0)
    assert record["problem_id"] == "mixed" and record["prompt"].endswith("Answer: ")


def test_summary_counts_band_solutions_estimates_and_rollouts(tmp_path, phijax_registry):
    phijax_registry()
    summary = run(tmp_path)
    assert summary == json.loads(summary_path(summary["pairs_file"]).read_text())
    assert (summary["problems"], summary["below_band"], summary["in_band"], summary["above_band"]) == (3, 1, 1, 1)
    assert summary["query_success"] == [0.5, 1.0, 0.0]
    assert (summary["solutions"], summary["pivotal_tokens"], summary["pairs"]) == (SOLUTIONS, 2, 1)
    assert summary["rollouts"] == summary["estimates"] * ROLLOUTS
    assert 3 < summary["estimates"] < 3 + 2 * len(TOKENIZER.encode("Answer: 42"))  # not a per-token scan
    assert summary["settings"]["band"] == [0.2, 0.8]
    assert not Path(summary["pairs_file"] + ".partial").exists()


def test_a_wider_band_keeps_the_easy_query(tmp_path, phijax_registry):
    phijax_registry()
    summary = run(tmp_path, band="[0.2, 1.0]")
    assert (summary["in_band"], summary["solutions"]) == (2, 2 * SOLUTIONS)
    assert summary["pairs"] == 1  # p = 1 everywhere on the easy query: nothing pivotal


class FloatEstimatorPlugin:
    """A reward estimator plugin that returns bare floats (a value model would): no rollouts."""

    @hookimpl
    def phijax_register_reward_estimators(self, register):
        def factory(num_rollouts, max_new_tokens, temperature, stop_tokens, value=0.5):
            return lambda problem, prefix_ids, *, policy, verifier, seed: value

        register("constant", factory)


def test_estimator_is_the_configured_plugin(tmp_path, phijax_registry):
    phijax_registry(FloatEstimatorPlugin())
    summary = run(tmp_path, estimator="constant", estimator_options="{value: 0.25}")
    assert summary["query_success"] == [0.25] * 3 and summary["in_band"] == 3
    assert summary["pairs"] == 0 and summary["rollouts"] == 0


def test_text_prompt_is_the_curriculum_document_form():
    ids = prompt_encoder(TokenizerPolicy(), "text")({"query": "Compute 1 + 2."})
    assert ids[0] == TOKENIZER.eod_id and TOKENIZER.decode(ids[1:]) == "Exercise. Compute 1 + 2.\n\nSolution."


@pytest.mark.parametrize(
    "overrides, error, words",
    [
        ({"problems": "missing.jsonl"}, ConfigError, "not found"),
        ({"band": "[0.8, 0.2]"}, ConfigError, "band"),
        ({"temperature": 0}, ConfigError, "temperature"),
        ({"rollouts": 0}, ConfigError, "rollouts"),
        ({"verifier": "math_answr"}, PhijaxError, "did you mean 'math_answer'"),
        ({"problems": "null", "curriculum.kinds": "[division]"}, ConfigError, "drop division"),
        ({"problems": "null", "curriculum.max_digits": 1}, ConfigError, "max_digits"),
    ],
)
def test_bad_settings_are_one_line_errors(tmp_path, phijax_registry, overrides, error, words):
    phijax_registry()
    with pytest.raises(error, match=words) as caught:
        run(tmp_path, **overrides)
    assert "\n" not in str(caught.value)


def test_a_bad_problem_line_stops_the_run_before_the_policy_is_used(tmp_path):
    (tmp_path / "bad").mkdir()
    path = tmp_path / "bad" / "problems.jsonl"  # every message: tests/data/test_problems.py
    path.write_text(json.dumps(PROBLEMS[0]) + "\nnot json\n")
    with pytest.raises(PhijaxError, match="problems.jsonl:2: not valid JSON") as caught:
        run_pts(pts_config(tmp_path, problems=str(path)), policy=object(), log=lambda line: None)
    assert "\n" not in str(caught.value)


def test_cli_without_checkpoint_exits_2_with_one_line(capsys):
    config = str(REPO / "configs" / "tiny" / "pts.yaml")
    assert main(["pts", "--config", config, "policy.checkpoint=null", "curriculum.count=1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "policy.checkpoint is not set" in err


def test_pts_configs_carry_the_papers_band_and_validate():
    from phijax.pts.driver import validate

    for name in ("tiny", "phi4-14b"):
        pts = load_job(PTSJob, [REPO / "configs" / name / "pts.yaml"])
        validate(pts)
        assert (pts.p_gap, pts.band, pts.estimator, pts.policy.backend) == (0.2, (0.2, 0.8), "monte_carlo", "local")
    assert load_job(PTSJob, [REPO / "configs" / "phi4-14b" / "pts.yaml"]).prompt_format == "chat"


def test_stop_tokens_are_passed_to_every_completion_and_the_policy_is_left_unchanged(tmp_path, phijax_registry):
    phijax_registry()
    policy = ScriptedPolicy(PROBLEMS, MODES)
    assert isinstance(policy, TokenPolicy)
    run(tmp_path, policy=policy)
    assert policy.stops_seen == {(TOKENIZER.eos_id,)} and policy.stop_tokens == (TOKENIZER.eos_id,)
    text = SilentPolicy()
    (tmp_path / "text").mkdir()
    run(tmp_path / "text", policy=text, prompt_format="text", problems="null", **{"curriculum.count": 1})
    assert text.stops_seen == {tuple(sorted({TOKENIZER.eos_id, TOKENIZER.eod_id}))} == {run_stop_tokens(text, "text")}
    assert text.stop_tokens == (TOKENIZER.eos_id,)


class SilentPolicy(TokenizerPolicy):
    """Stops at once after any prefix (p(success) = 0); records the stop tokens it was given."""

    def __init__(self):
        self.stops_seen = set()

    def complete(self, prefix_ids, *, num_samples, stop_tokens=None, **sampling):
        self.stops_seen.add(tuple(stop_tokens))
        return [[] for _ in range(num_samples)]

"""`phijax pts --config FILE`: from a checkpoint and problems to Pivotal Token Search DPO pairs.

    problems (JSONL or the curriculum) ─► prompt ids (chat template or textbook form)
        ─► `pts_pairs` loop (band filter, solutions, PTS) with the configured estimator + verifier
        ─► pairs JSONL (what `phijax dpo` reads) + `<stem>.summary.json` (the run's counts)

The loop itself is `phijax.pts.pairs`; this module builds what it needs from the `pts` config
section, counts what the run spent (estimates, rollouts, generated tokens) and writes the files.
The pairs file is written as `<output>.partial` and renamed when the run completes, so a file named
`output` is always a whole run.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from phijax.config import Config, CurriculumProblemsConfig, PTSConfig
from phijax.errors import ConfigError
from phijax.pts import SuccessEstimate
from phijax.pts.pairs import PTSSettings, PTSStats, pts_pairs
from phijax.verify import ProblemError

TEXT_PROMPT = "Exercise. {query}\n\nSolution."  # the curriculum's textbook form (Problem.text)
MAX_SCAN = 10_000  # curriculum indices scanned per problem kept before max_digits counts as too strict


# ---------------------------------------------------------------------------------- the config
def validate(pts: PTSConfig, *, need_checkpoint: bool = True) -> None:
    """Refuse a `pts` section that cannot run, with one line naming the key to fix."""
    if need_checkpoint and not pts.checkpoint:
        raise ConfigError("pts.checkpoint is not set: pass the policy, e.g. pts.checkpoint=runs/tiny-pretrain")
    positive = {"rollouts": pts.rollouts, "solutions": pts.solutions, "max_new_tokens": pts.max_new_tokens}
    for key, value in positive.items():
        if value < 1:
            raise ConfigError(f"pts.{key} ({value}) must be at least 1")
    if not pts.temperature > 0:
        raise ConfigError(f"pts.temperature ({pts.temperature}) must be > 0: PTS needs sampled rollouts (1.0 is usual)")
    if not 0 < pts.p_gap <= 1:
        raise ConfigError(f"pts.p_gap ({pts.p_gap}) must be in (0, 1]; the report's default is 0.2")
    if len(pts.band) != 2 or not 0 <= pts.band[0] <= pts.band[1] <= 1:
        raise ConfigError(f"pts.band {list(pts.band)} must be [low, high] with 0 <= low <= high <= 1, e.g. [0.2, 0.8]")
    if pts.problems is None:
        _validate_curriculum(pts.curriculum, pts.verifier)


def _validate_curriculum(cur: CurriculumProblemsConfig, verifier: str) -> None:
    from phijax.data.curriculum import KINDS

    if cur.count < 1:
        raise ConfigError(f"pts.curriculum.count ({cur.count}) must be at least 1")
    unknown = sorted(set(cur.kinds) - set(KINDS)) or ([] if cur.kinds else ["(none)"])
    if unknown:
        raise ConfigError(f"pts.curriculum.kinds: unknown kind {unknown[0]}; choose from {', '.join(KINDS)}")
    if cur.max_digits is not None and cur.max_digits < 2:
        raise ConfigError(f"pts.curriculum.max_digits ({cur.max_digits}) must be at least 2 (the curriculum's smallest problems)")
    if "division" in cur.kinds and verifier == "math_answer":
        raise ConfigError("pts.curriculum.kinds holds division, whose answer `Q remainder R` math_answer cannot "
                          "match (it compares the last number): drop division from pts.curriculum.kinds")


# ---------------------------------------------------------------------------------- the problems
def load_problems(pts: PTSConfig) -> list[dict[str, Any]]:
    """The run's problems: the `pts.problems` JSONL, or `pts.curriculum` problems when it is null."""
    if pts.problems is not None:
        return read_problems(pts.problems)
    return curriculum_problems(pts.curriculum)


def read_problems(path: str | Path) -> list[dict[str, Any]]:
    """Problems of a JSONL file: one object a line with a non-empty `query` and `answer` or `tests`."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"pts.problems file {path} not found: write a JSONL of {{query, answer}} records "
                          "or set pts.problems=null to use the curriculum")
    problems = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if line.strip():
            problems.append(_problem(line, f"{path}:{number}"))
    if not problems:
        raise ProblemError(f"{path} holds no problems: write one JSON object per line")
    return problems


def _problem(line: str, where: str) -> dict[str, Any]:
    try:
        record = json.loads(line)
    except ValueError:
        raise ProblemError(f"{where}: not valid JSON; write one problem object per line") from None
    if not isinstance(record, dict) or not isinstance(record.get("query"), str) or not record["query"]:
        raise ProblemError(f"{where}: a problem needs a non-empty `query` string")
    if "answer" not in record and "tests" not in record:
        raise ProblemError(f"{where}: problem has neither `answer` nor `tests`; add what the verifier checks")
    return {"id": record.get("id", where.rpartition(":")[2]), **record}


def curriculum_problems(cur: CurriculumProblemsConfig) -> list[dict[str, Any]]:
    """`cur.count` curriculum problems as `{id, query, answer, kind}` records (see the config class)."""
    from phijax.data.curriculum import make_problem

    limit = None if cur.max_digits is None else 10**cur.max_digits
    problems: list[dict[str, Any]] = []
    index = 0
    while len(problems) < cur.count:
        if index >= MAX_SCAN * cur.count:
            raise ConfigError(f"pts.curriculum: only {len(problems)} of {cur.count} problems have operands of at most "
                              f"{cur.max_digits} digits; raise pts.curriculum.max_digits or lower count")
        problem = make_problem(cur.seed, index, tuple(cur.kinds))
        if limit is None or max(problem.a, problem.b) < limit:
            problems.append({"id": f"curriculum-{cur.seed}-{index}", "query": problem.question,
                             "answer": problem.answer, "kind": problem.kind})
        index += 1
    return problems


def prompt_encoder(tokenizer: Any, prompt_format: str) -> Callable[[dict[str, Any]], list[int]]:
    """problem -> token ids of its templated query, the prefix every solution continues.

    `chat`: one user turn and the assistant generation prompt (Phi-4's chat template). `text`: the
    document separator then `Exercise. {query}\\n\\nSolution.`, how the curriculum's pretraining
    documents read, for models that have seen no chat.
    """
    if prompt_format == "chat":
        return lambda p: tokenizer.format_chat([{"role": "user", "content": p["query"]}], add_generation_prompt=True)[0]
    if prompt_format == "text":
        return lambda p: [tokenizer.eod_id, *tokenizer.encode(TEXT_PROMPT.format(query=p["query"]))]
    raise ConfigError(f"pts.prompt_format {prompt_format!r} must be `chat` or `text`")


# ------------------------------------------------------------------------------- what a run spends
class CountingPolicy:
    """A `Policy` that forwards to `policy` and counts the sequences and tokens `complete` sampled."""

    def __init__(self, policy: Any) -> None:
        self.policy, self.sequences, self.tokens = policy, 0, 0

    def complete(self, prefix_ids: Sequence[int], **sampling: Any) -> list[list[int]]:
        rows = self.policy.complete(prefix_ids, **sampling)
        self.sequences += len(rows)
        self.tokens += sum(len(r) for r in rows)
        return rows

    def __getattr__(self, name: str) -> Any:  # decode, generate, loglikelihood, tokenizer, ...
        return getattr(self.policy, name)


class QueryEstimates:
    """The configured estimator, attributed to its plugin, noting p(success | query) per problem.

    The estimate of the empty response prefix is the query's success rate that the band filter
    reads; keeping them shows how many queries fell below, inside and above the band.
    """

    def __init__(self, estimator: Any, name: str, registry: Any, log: Callable[[str], None], band: Sequence[float]):
        self.estimator, self.name, self.registry, self.log, self.band = estimator, name, registry, log, band
        self.query_success: list[float] = []

    def __call__(self, problem: dict[str, Any], prefix_ids: Sequence[int], **kwargs: Any) -> Any:
        with self.registry.attributed("reward_estimators", self.name):
            estimate = self.estimator(problem, prefix_ids, **kwargs)
        if len(prefix_ids) == len(problem["prompt_ids"]):
            p = estimate.probability if isinstance(estimate, SuccessEstimate) else float(estimate)
            self.query_success.append(p)
            where = "below" if p < self.band[0] else "above" if p > self.band[1] else "inside"
            self.log(f"problem {len(self.query_success)} ({problem.get('id')}): p(success) {p:.2f}, {where} the band")
        return estimate


def band_counts(query_success: Sequence[float], band: Sequence[float]) -> dict[str, int]:
    """How many queries fell below, inside and above the success band."""
    low, high = band
    return {"below_band": sum(p < low for p in query_success),
            "in_band": sum(low <= p <= high for p in query_success),
            "above_band": sum(p > high for p in query_success)}


def summary_path(output: str | Path) -> Path:
    """Where the summary of the pairs file `output` goes: `pairs.jsonl` -> `pairs.summary.json`."""
    return Path(output).with_suffix(".summary.json")


# --------------------------------------------------------------------------------------- the run
def run_pts(cfg: Config, policy: Any = None, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run PTS over the configured problems; write the pairs and their summary; return the summary.

    `policy`: a `Policy` with a `tokenizer` (default: `load_policy(pts.checkpoint, pts.tokenizer)`).
    """
    from phijax.plugins.registry import get_registry

    pts = cfg.pts
    validate(pts, need_checkpoint=policy is None)
    problems = load_problems(pts)
    registry = get_registry()
    verifier = registry.create("verifiers", pts.verifier, **pts.verifier_options)
    estimator = registry.create("reward_estimators", pts.estimator, num_rollouts=pts.rollouts,
                                max_new_tokens=pts.max_new_tokens, temperature=pts.temperature,
                                **pts.estimator_options)
    policy = policy if policy is not None else load_pts_policy(pts)
    counting = CountingPolicy(policy)
    estimates = QueryEstimates(estimator, pts.estimator, registry, log, pts.band)
    stats = PTSStats()
    settings = PTSSettings(num_solutions=pts.solutions, max_new_tokens=pts.max_new_tokens,
                           temperature=pts.temperature, p_gap=pts.p_gap, band=tuple(pts.band), seed=pts.seed)
    start = time.perf_counter()
    records = pts_pairs(problems, policy=counting, prompt_ids=prompt_encoder(policy.tokenizer, pts.prompt_format),
                        estimator=estimates, verifier=verifier, settings=settings, stats=stats)
    written = write_pairs(pts.output, unique_pairs(records))
    summary = run_summary(pts, stats, written, estimates.query_success, counting, time.perf_counter() - start)
    summary_path(pts.output).write_text(json.dumps(summary, indent=2) + "\n")
    log(format_summary(summary))
    return summary


def run_summary(pts: PTSConfig, stats: PTSStats, written: int, query_success: list[float],
                counting: CountingPolicy, wall_s: float) -> dict[str, Any]:
    """The summary JSON: counts of the run, what it spent, each query's p(success), the settings.

    `rollouts` are the sequences the estimator sampled (all sampled minus the solutions searched).
    """
    return {
        "pairs_file": str(pts.output), "checkpoint": pts.checkpoint, "problems": stats.problems,
        **band_counts(query_success, pts.band), "solutions": stats.solutions,
        "pivotal_tokens": stats.pivotal_tokens, "pairs": written, "duplicate_pairs": stats.pairs - written,
        "estimates": stats.estimates, "rollouts": counting.sequences - stats.solutions,
        "generated_tokens": counting.tokens, "wall_s": round(wall_s, 2), "query_success": query_success,
        "settings": _settings(pts),
    }


def load_pts_policy(pts: PTSConfig) -> Any:
    """The checkpoint's `ModelPolicy`; the `text` format also stops at the document separator."""
    from phijax.generate import load_policy

    policy = load_policy(pts.checkpoint, pts.tokenizer)
    if pts.prompt_format == "text":  # a pretrained model ends a document with <|endoftext|>, not <|im_end|>
        policy.stop_tokens = sorted({*policy.stop_tokens, policy.tokenizer.eod_id})
    return policy


def unique_pairs(records: Any) -> Any:
    """`records` without repeats of a pair already yielded (same prompt ids, chosen and rejected).

    Solutions of one query often share a prefix, and estimates are memoised per prefix, so two
    solutions through the same pivotal token give the very same pair: a repeat would only weigh
    that query more in DPO.
    """
    seen: set[tuple[tuple[int, ...], int, int]] = set()
    for record in records:
        key = (tuple(record["prompt_ids"]), record["chosen_id"], record["rejected_id"])
        if key not in seen:
            seen.add(key)
            yield record


def write_pairs(output: str | Path, records: Any) -> int:
    """Write JSON `records` one a line to `output` (via `<output>.partial`); returns how many."""
    path = Path(output)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    count = 0
    with partial.open("w") as f:
        for record in records:
            f.write(json.dumps(record) + "\n")
            f.flush()  # a long run's pairs can be inspected while it goes
            count += 1
    os.replace(partial, path)
    return count


def _settings(pts: PTSConfig) -> dict[str, Any]:
    keys = ("estimator", "verifier", "prompt_format", "rollouts", "p_gap", "band", "solutions",
            "max_new_tokens", "temperature", "seed", "problems")
    return {k: list(v) if isinstance(v, tuple) else v for k, v in ((k, getattr(pts, k)) for k in keys)}


def format_summary(summary: dict[str, Any]) -> str:
    """The run's counts as the lines `phijax pts` prints at the end."""
    s = summary
    return (f"queries {s['problems']}: {s['below_band']} below / {s['in_band']} in / {s['above_band']} above the band\n"
            f"solutions searched {s['solutions']}, pivotal tokens {s['pivotal_tokens']}, "
            f"pairs {s['pairs']} (+{s['duplicate_pairs']} repeats dropped)\n"
            f"estimates {s['estimates']}, rollouts {s['rollouts']}, generated tokens {s['generated_tokens']:,}, "
            f"wall {s['wall_s']:.1f} s\n"
            f"wrote {s['pairs_file']} and {summary_path(s['pairs_file'])}" + _no_pairs_hint(s))


def _no_pairs_hint(s: dict[str, Any]) -> str:
    if s["pairs"]:
        return ""
    if s["below_band"] > s["above_band"]:
        return ("\nno pairs: most queries fall below the band; train the policy longer, use easier problems "
                "or lower pts.temperature")
    return "\nno pairs: try more problems, more pts.solutions or a smaller pts.p_gap"

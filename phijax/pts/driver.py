"""`phijax pts --config FILE`: from a policy and problems to Pivotal Token Search DPO pairs.

    problems (JSONL or the curriculum) ─► prompt ids (chat template or textbook form)
        ─► `pts_pairs` loop (band filter, solutions, PTS) with the configured estimator + verifier
        ─► pairs JSONL (what `phijax dpo` reads) + `<stem>.summary.json` (the run's counts)

The loop itself is `phijax.pts.pairs`; this module builds what it needs from the `PTSJob` config
(the policy through its backend, `policy: {backend: local, checkpoint: ...}`), counts what the run
spent (estimates, rollouts, generated tokens) and writes the files. The policy is used only through
the `TokenPolicy` protocol and never changed: the run's stop tokens are passed to every completion.
The pairs file is written as `<output>.partial` and renamed when the run completes, so a file named
`output` is always a whole run. Progress (queries done, pairs written, counts) is saved after every
query in `<output>.progress.json`: SIGTERM stops the run after the query in hand, and the same command
resumes it (`Progress`); once it is finished, the same command says so and does nothing
(`finished_run`). An output directory that cannot be written stops the run before the policy is
loaded (`check_writable`), leaving what is there as it was.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import signal
import time
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from phijax.data.config import CurriculumProblemsConfig
from phijax.data.problems import TEXT_PROMPT, curriculum_issue, curriculum_problems, read_problems
from phijax.errors import ConfigError, PhijaxError
from phijax.plugins.protocols import TOKENS, TokenPolicy
from phijax.pts import SuccessEstimate
from phijax.pts.config import PTSJob
from phijax.pts.pairs import PTSSettings, PTSStats, pts_pairs


# ---------------------------------------------------------------------------------- the config
def validate(pts: PTSJob, *, need_checkpoint: bool = True) -> None:
    """Refuse a PTS job that cannot run, with one line naming the key to fix."""
    if need_checkpoint and pts.policy.backend == "local" and not pts.policy.checkpoint:
        raise ConfigError("policy.checkpoint is not set: pass the policy, e.g. policy.checkpoint=runs/tiny-pretrain")
    positive = {"rollouts": pts.rollouts, "solutions": pts.solutions, "max_new_tokens": pts.max_new_tokens}
    for key, value in positive.items():
        if value < 1:
            raise ConfigError(f"{key} ({value}) must be at least 1")
    if not pts.temperature > 0:
        raise ConfigError(f"temperature ({pts.temperature}) must be > 0: PTS needs sampled rollouts (1.0 is usual)")
    if not 0 < pts.p_gap <= 1:
        raise ConfigError(f"p_gap ({pts.p_gap}) must be in (0, 1]; the report's default is 0.2")
    if len(pts.band) != 2 or not 0 <= pts.band[0] <= pts.band[1] <= 1:
        raise ConfigError(f"band {list(pts.band)} must be [low, high] with 0 <= low <= high <= 1, e.g. [0.2, 0.8]")
    if pts.problems is None:
        _validate_curriculum(pts.curriculum, pts.verifier)


def _validate_curriculum(cur: CurriculumProblemsConfig, verifier: str) -> None:
    issue = curriculum_issue(cur.count, cur.kinds, cur.max_digits, prefix="curriculum.")
    if issue:
        raise ConfigError(issue)
    if "division" in cur.kinds and verifier == "math_answer":
        raise ConfigError(
            "curriculum.kinds holds division, whose answer `Q remainder R` math_answer cannot "
            "match (it compares the last number): drop division from curriculum.kinds"
        )


# ---------------------------------------------------------------------------------- the problems
def load_problems(pts: PTSJob) -> list[dict[str, Any]]:
    """The run's problems (`phijax.data.problems`): the `problems` JSONL, or `curriculum` problems when
    it is null."""
    if pts.problems is not None:
        return read_problems(pts.problems, _checked_fields(pts.verifier_options))
    return curriculum_problems(pts.curriculum)


def _checked_fields(verifier_options: dict[str, Any]) -> tuple[str, ...]:
    """The problem fields the verifier reads: those its `*_field` options name (e.g. `answer_field:
    solution`), else `answer` or `tests` (the built-in verifiers' defaults)."""
    named = tuple(v for k, v in sorted(verifier_options.items()) if k.endswith("_field") and isinstance(v, str))
    return named or ("answer", "tests")


def prompt_encoder(policy: TokenPolicy, prompt_format: str) -> Callable[[dict[str, Any]], list[int]]:
    """problem -> token ids of its templated query, the prefix every solution continues.

    `chat`: one user turn and the assistant generation prompt (the policy's chat template). `text`: the
    end-of-text separator then `Exercise. {query}\\n\\nSolution.`, how the curriculum's pretraining
    documents read, for models that have seen no chat.
    """
    if prompt_format == "chat":
        return lambda p: policy.chat_prompt([{"role": "user", "content": p["query"]}])
    if prompt_format == "text":
        return lambda p: [policy.eot_token_id, *policy.encode(TEXT_PROMPT.format(query=p["query"]))]
    raise ConfigError(f"prompt_format {prompt_format!r} must be `chat` or `text`")


def run_stop_tokens(policy: TokenPolicy, prompt_format: str) -> tuple[int, ...]:
    """The ids that end a solution or rollout: the policy's own, plus end-of-text for `text` prompts
    (a pretrained model ends a document with <|endoftext|>, not with an end-of-turn token)."""
    extra = {policy.eot_token_id} if prompt_format == "text" else set()
    return tuple(sorted({*policy.stop_tokens, *extra}))


# ------------------------------------------------------------------------------- what a run spends
class CountingPolicy:
    """A `TokenPolicy` that forwards to `policy` and counts the sequences and tokens `complete` sampled."""

    def __init__(self, policy: Any) -> None:
        self.policy, self.sequences, self.tokens = policy, 0, 0

    def complete(self, prefix_ids: Sequence[int], **sampling: Any) -> list[list[int]]:
        rows = self.policy.complete(prefix_ids, **sampling)
        self.sequences += len(rows)
        self.tokens += sum(len(r) for r in rows)
        return rows

    def __getattr__(self, name: str) -> Any:  # decode, encode, stop_tokens, loglikelihood, ...
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
    return {
        "below_band": sum(p < low for p in query_success),
        "in_band": sum(low <= p <= high for p in query_success),
        "above_band": sum(p > high for p in query_success),
    }


def summary_path(output: str | Path) -> Path:
    """Where the summary of the pairs file `output` goes: `pairs.jsonl` -> `pairs.summary.json`."""
    return Path(output).with_suffix(".summary.json")


# --------------------------------------------------------------------------------------- the run
def run_pts(job: PTSJob, policy: TokenPolicy | None = None, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run PTS over the configured problems; write the pairs and their summary; return the summary.

    `policy`: a `TokenPolicy` (default: the one `job.policy`'s backend makes on `job.mesh`).
    """
    from phijax.plugins.registry import get_registry

    validate(job, need_checkpoint=policy is None)
    finished = finished_run(job)
    if finished is not None:
        log(
            f"PTS already complete: {job.output} holds {finished['pairs']} pairs from these settings "
            f"(counts in {summary_path(job.output)}); nothing to do"
        )
        return finished
    problems = load_problems(job)
    check_writable(Path(job.output).parent)  # before the policy is loaded: a read-only dir costs nothing
    registry = get_registry()
    verifier = registry.create("verifiers", job.verifier, **job.verifier_options)
    policy = policy if policy is not None else load_job_policy(job)
    stop_tokens = run_stop_tokens(policy, job.prompt_format)
    estimator = registry.create(
        "reward_estimators",
        job.estimator,
        num_rollouts=job.rollouts,
        max_new_tokens=job.max_new_tokens,
        temperature=job.temperature,
        stop_tokens=stop_tokens,
        **job.estimator_options,
    )
    counting = CountingPolicy(policy)
    estimates = QueryEstimates(estimator, job.estimator, registry, log, job.band)
    stats = PTSStats()
    settings = PTSSettings(
        num_solutions=job.solutions,
        max_new_tokens=job.max_new_tokens,
        temperature=job.temperature,
        p_gap=job.p_gap,
        band=tuple(job.band),
        seed=job.seed,
        stop_tokens=stop_tokens,
    )
    progress = Progress(job, stats, estimates, counting)
    first, seen = progress.resume(len(problems), log)
    records = pts_pairs(
        progress.track(problems, first),
        policy=counting,
        prompt_ids=prompt_encoder(policy, job.prompt_format),
        estimator=estimates,
        verifier=verifier,
        settings=settings,
        stats=stats,
        first_index=first,
    )
    with _sigterm_flag() as received:
        progress.received = received
        try:
            written = write_pairs(job.output, unique_pairs(records, seen), append=first > 0)
        except Preempted:
            log(
                f"SIGTERM: {progress.done} of {len(problems)} queries done, {progress.written} pairs saved in "
                f"{partial_path(job.output)}; run the same command to resume"
            )
            return {"preempted": True, "problems_done": progress.done, "pairs": progress.written}
    summary = run_summary(job, stats, written, estimates.query_success, counting, progress.wall_s())
    summary_path(job.output).write_text(json.dumps(summary, indent=2) + "\n")
    progress.path.unlink(missing_ok=True)
    log(format_summary(summary))
    return summary


def finished_run(job: PTSJob) -> dict[str, Any] | None:
    """The summary of a finished run at `job.output` with the same settings and checkpoint (run it again:
    nothing to do), None where there is none; PhijaxError where one with other settings is there, which
    a new run would overwrite."""
    output, summary = Path(job.output), summary_path(job.output)
    if not (output.is_file() and summary.is_file()) or partial_path(output).exists():
        return None
    try:
        saved = json.loads(summary.read_text())
    except (OSError, ValueError):
        return None  # an unreadable summary: the run is redone and both files are written anew
    wanted = json.loads(json.dumps({**_settings(job), "checkpoint": job.policy.checkpoint}))
    have = {**saved.get("settings", {}), "checkpoint": saved.get("checkpoint")}
    # a key an older summary lacks is not compared
    changed = [f"{k}: {have[k]!r} -> {v!r}" for k, v in wanted.items() if k in have and have[k] != v]
    if not changed:
        return saved
    raise PhijaxError(
        f"{output} holds a finished PTS run with other settings ({'; '.join(changed[:3])}); choose another "
        f"output, or delete {output} and {summary} to search again"
    )


def run_summary(
    job: PTSJob, stats: PTSStats, written: int, query_success: list[float], counting: CountingPolicy, wall_s: float
) -> dict[str, Any]:
    """The summary JSON: counts of the run, what it spent, each query's p(success), the settings.

    `rollouts` are the sequences the estimator sampled (all sampled minus the solutions searched).
    """
    return {
        "pairs_file": str(job.output),
        "policy": getattr(counting.policy, "name", None),
        "checkpoint": job.policy.checkpoint,
        "problems": stats.problems,
        **band_counts(query_success, job.band),
        "solutions": stats.solutions,
        "pivotal_tokens": stats.pivotal_tokens,
        "pairs": written,
        "duplicate_pairs": stats.pairs - written,
        "estimates": stats.estimates,
        "rollouts": counting.sequences - stats.solutions,
        "generated_tokens": counting.tokens,
        "wall_s": round(wall_s, 2),
        "query_success": query_success,
        "settings": _settings(job),
    }


def load_job_policy(job: PTSJob) -> TokenPolicy:
    """The policy `job.policy` names, made by its backend on `job.mesh`; PTS needs token-level access."""
    from phijax.plugins.registry import get_registry

    policy = get_registry().create("backends", job.policy.backend, mesh=job.mesh, **job.policy.factory_options())
    if TOKENS not in policy.capabilities:
        raise PhijaxError(
            f"policy.backend {job.policy.backend} gives no token-level access ({TOKENS}), which PTS "
            "needs for prefixes and rollouts: use the local backend"
        )
    return policy


class Preempted(Exception):
    """SIGTERM arrived: progress is saved after the query in hand and the run stops."""


class Progress:
    """`<output>.progress.json`: queries done, pairs written and the counts so far, saved after each query.

    A run stopped by SIGTERM (or killed) keeps `<output>.partial` and this file; the same command then
    resumes at the next query (seeds depend on the query's index, so the resumed run samples what the
    whole run would have), after dropping pairs of a query that was cut short.
    """

    def __init__(self, job: PTSJob, stats: PTSStats, estimates: QueryEstimates, counting: CountingPolicy):
        self.job, self.stats, self.estimates, self.counting = job, stats, estimates, counting
        self.path = Path(job.output).with_name(Path(job.output).name + ".progress.json")
        self.key = json.dumps({"settings": _settings(job), "checkpoint": job.policy.checkpoint}, sort_keys=True)
        self.done = self.written = 0
        self.received: list[bool] = []
        self.total = 0
        self.elapsed_before, self.started = 0.0, time.perf_counter()

    def resume(self, total: int, log: Callable[[str], None]) -> tuple[int, set]:
        """(first query index, keys of the pairs already written) from a matching progress file."""
        partial = partial_path(self.job.output)
        if not (self.path.is_file() and partial.is_file()):
            return 0, set()
        saved = json.loads(self.path.read_text())
        if saved.get("key") != self.key:
            log(f"{self.path} is for other settings: starting over")
            return 0, set()
        lines = partial.read_text().splitlines()[: saved["written"]]
        partial.write_text("".join(line + "\n" for line in lines))
        for name, value in saved["stats"].items():
            setattr(self.stats, name, value)
        self.estimates.query_success = list(saved["query_success"])
        self.counting.sequences, self.counting.tokens = saved["sequences"], saved["tokens"]
        self.done, self.written, self.elapsed_before = saved["done"], len(lines), saved["wall_s"]
        log(f"resuming PTS at query {self.done + 1} of {total} ({self.written} pairs already in {partial})")
        return self.done, {_pair_key(json.loads(line)) for line in lines}

    def track(self, problems: Sequence[dict[str, Any]], first: int) -> Any:
        """problems[first:], saving progress each time the loop asks for the next (the last is done)."""
        self.total = len(problems)
        for index in range(first, len(problems)):
            if index > first:
                self.save(index)
            yield problems[index]
        self.save(len(problems))

    def save(self, done: int) -> None:
        self.done = done
        self.written = _count_lines(partial_path(self.job.output))
        record = {
            "key": self.key,
            "done": done,
            "written": self.written,
            "stats": dataclasses.asdict(self.stats),
            "query_success": self.estimates.query_success,
            "sequences": self.counting.sequences,
            "tokens": self.counting.tokens,
            "wall_s": self.wall_s(),
        }
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(record))
        tmp.replace(self.path)
        if self.received and done < self.total:
            raise Preempted

    def wall_s(self) -> float:
        return self.elapsed_before + time.perf_counter() - self.started


def partial_path(output: str | Path) -> Path:
    return Path(output).with_name(Path(output).name + ".partial")


def _count_lines(path: Path) -> int:
    return path.read_text().count("\n") if path.is_file() else 0


@contextmanager
def _sigterm_flag() -> Any:
    """While active, SIGTERM only sets a flag (progress is saved after the query in hand)."""
    received: list[bool] = []
    try:
        previous = signal.signal(signal.SIGTERM, lambda *_: received.append(True))
    except ValueError:  # not the main thread: leave signals alone
        yield received
        return
    try:
        yield received
    finally:
        signal.signal(signal.SIGTERM, previous)


def _pair_key(record: dict[str, Any]) -> tuple[tuple[int, ...], int, int]:
    return tuple(record["prompt_ids"]), record["chosen_id"], record["rejected_id"]


def unique_pairs(records: Any, seen: set | None = None) -> Any:
    """`records` without repeats of a pair already yielded (same prompt ids, chosen and rejected).

    Solutions of one query often share a prefix, and estimates are memoised per prefix, so two
    solutions through the same pivotal token give the very same pair: a repeat would only weigh
    that query more in DPO.
    """
    seen = set() if seen is None else seen  # a resumed run's: the pairs already written
    for record in records:
        key = _pair_key(record)
        if key not in seen:
            seen.add(key)
            yield record


def check_writable(directory: Path) -> None:
    """Make `directory` (and its parents) if needed and raise the `OSError` a write in it would (EROFS or
    EACCES, naming it) when it cannot be written, so a run stops before it starts and `phijax pts` says
    `cannot write DIR` in one line like every command (`phijax.cli.main`). Nothing in it is changed: a
    finished run there is kept as it is."""
    directory.mkdir(parents=True, exist_ok=True)
    if not os.access(directory, os.W_OK | os.X_OK):
        code = errno.EROFS if os.statvfs(directory).f_flag & os.ST_RDONLY else errno.EACCES
        raise OSError(code, os.strerror(code), str(directory))


def write_pairs(output: str | Path, records: Any, append: bool = False) -> int:
    """Write JSON `records` one a line to `output` (via `<output>.partial`, appended to when `append`);
    returns how many lines the file holds."""
    path = Path(output)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = partial_path(path)
    count = _count_lines(partial) if append else 0
    with partial.open("a" if append else "w") as f:
        for record in records:
            f.write(json.dumps(record) + "\n")
            f.flush()  # a long run's pairs can be inspected while it goes
            count += 1
    os.replace(partial, path)
    return count


def _settings(pts: PTSJob) -> dict[str, Any]:
    keys = (
        "estimator",
        "verifier",
        "prompt_format",
        "rollouts",
        "p_gap",
        "band",
        "solutions",
        "max_new_tokens",
        "temperature",
        "seed",
        "problems",
        "estimator_options",
        "verifier_options",
    )
    settings = {k: list(v) if isinstance(v, tuple) else v for k, v in ((k, getattr(pts, k)) for k in keys)}
    settings["curriculum"] = None if pts.problems else json.loads(json.dumps(dataclasses.asdict(pts.curriculum)))
    return settings


def format_summary(summary: dict[str, Any]) -> str:
    """The run's counts as the lines `phijax pts` prints at the end."""
    s = summary
    return (
        f"queries {s['problems']}: {s['below_band']} below / {s['in_band']} in / {s['above_band']} above the band\n"
        f"solutions searched {s['solutions']}, pivotal tokens {s['pivotal_tokens']}, "
        f"pairs {s['pairs']} (+{s['duplicate_pairs']} repeats dropped)\n"
        f"estimates {s['estimates']}, rollouts {s['rollouts']}, generated tokens {s['generated_tokens']:,}, "
        f"wall {s['wall_s']:.1f} s\n"
        f"wrote {s['pairs_file']} and {summary_path(s['pairs_file'])}" + _no_pairs_hint(s)
    )


def _no_pairs_hint(s: dict[str, Any]) -> str:
    if s["pairs"]:
        return ""
    if s["below_band"] > s["above_band"]:
        return (
            "\nno pairs: most queries fall below the band; train the policy longer, use easier problems "
            "or lower temperature"
        )
    return "\nno pairs: try more problems, more solutions or a smaller p_gap"

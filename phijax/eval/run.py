"""`phijax eval`: policies × evaluators → a results table, results.json and samples_<evaluator>.jsonl.

    EvalJob ─► evaluators built (unknown name, bad file → one line, before any model loads)
            ─► for each policy: backend factory (sharded on the mesh) ─► capability check of every evaluator
            ─► evaluator(policy, seed) per evaluator (progress bar: requests/s) ─► EvaluationResult
            ─► table on stdout; results.json (+ samples) written only once everything succeeded

Nothing is written when any step fails, so an output directory never holds half a run. Multi-host:
every process runs the same evaluations (sharded programs run in step); process 0 prints and writes.
"""

from __future__ import annotations

import importlib.metadata
import inspect
import json
import os
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from phijax.config import to_dict
from phijax.errors import PhijaxError
from phijax.eval.capabilities import require
from phijax.eval.config import EvalJob, EvaluatorSpec
from phijax.plugins.protocols import EvaluationResult

VERSIONED = ("phijax", "jax", "jaxlib", "flax", "numpy", "lm-eval", "transformers", "torch", "datasets")


@dataclass
class PolicyRun:
    """One policy's results: evaluator key → result, and the seconds each took (plus `load`)."""

    name: str
    results: dict[str, EvaluationResult] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    requests: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class NamedEvaluator:
    """An evaluator and the registered name it was built from (errors inside it name its plugin)."""

    name: str
    evaluator: Any

    @property
    def requires(self) -> frozenset[str]:
        return frozenset(getattr(self.evaluator, "requires", frozenset()))


def build_evaluators(specs: Sequence[EvaluatorSpec], *, limit: int | None = None) -> dict[str, NamedEvaluator]:
    """Evaluator key → evaluator built by its registered factory (`limit` passed where set)."""
    from phijax.plugins.registry import get_registry

    registry = get_registry()
    built: dict[str, NamedEvaluator] = {}
    for spec in specs:
        options = dict(spec.options)
        if limit is not None and "limit" not in options:
            if not _accepts(registry.get("evaluators", spec.name), "limit"):
                raise PhijaxError(f"evaluator `{spec.key}` takes no `limit` option: remove the top-level `limit`")
            options["limit"] = limit
        built[spec.key] = NamedEvaluator(spec.name, registry.create("evaluators", spec.name, **options))
    return built


def _accepts(factory: Callable[..., Any], option: str) -> bool:
    try:
        params = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):
        return True
    return any(p.name == option or p.kind is inspect.Parameter.VAR_KEYWORD for p in params)


def check_requirements(policy: Any, evaluators: dict[str, NamedEvaluator]) -> None:
    """Every evaluator's `requires` ⊆ the policy's capabilities, else one line naming both."""
    for key, named in evaluators.items():
        require(policy, named.requires, f"evaluator `{key}`")


def run_evaluators(
    policy: Any,
    evaluators: dict[str, NamedEvaluator],
    *,
    seed: int,
    progress: bool | None = None,
    name: str | None = None,
) -> PolicyRun:
    """Each evaluator on `policy` (after the capability check of all of them), timed and counted."""
    from phijax.plugins.registry import get_registry

    check_requirements(policy, evaluators)
    run = PolicyRun(name or str(getattr(policy, "name", "policy")))
    registry = get_registry()
    for key, named in evaluators.items():
        with tqdm(desc=f"{run.name} · {key}", unit="req", disable=None if progress is None else not progress) as bar:
            counted = CountingPolicy(policy, bar)
            start = time.perf_counter()
            with registry.attributed("evaluators", named.name):
                result = named.evaluator(counted, seed=seed)
            run.seconds[key] = time.perf_counter() - start
            run.requests[key] = counted.requests
        if not isinstance(result, EvaluationResult):
            raise PhijaxError(f"evaluator `{key}` returned {type(result).__name__}, not an EvaluationResult")
        run.results[key] = result
    return run


class CountingPolicy:
    """A policy seen through a progress bar: counts the requests of each scoring/generation call."""

    def __init__(self, policy: Any, bar: Any) -> None:
        self._policy, self._bar, self.requests = policy, bar, 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._policy, name)

    def _count(self, n: int) -> None:
        self.requests += n
        self._bar.update(n)

    def loglikelihood(self, requests: Sequence[Any], *args: Any, **kwargs: Any) -> Any:
        out = self._policy.loglikelihood(requests, *args, **kwargs)
        self._count(len(requests))
        return out

    def loglikelihood_ids(self, requests: Sequence[Any], *args: Any, **kwargs: Any) -> Any:
        out = self._policy.loglikelihood_ids(requests, *args, **kwargs)
        self._count(len(requests))
        return out

    def generate(self, prompts: Sequence[str], *args: Any, **kwargs: Any) -> Any:
        out = self._policy.generate(prompts, *args, **kwargs)
        self._count(len(prompts) * int(kwargs.get("num_samples", 1)))
        return out

    def complete(self, prefix_ids: Sequence[int], *args: Any, **kwargs: Any) -> Any:
        out = self._policy.complete(prefix_ids, *args, **kwargs)
        self._count(int(kwargs.get("num_samples", 1)))
        return out


# ------------------------------------------------------------------------------------- the command
def evaluate_job(job: EvalJob, *, progress: bool | None = None) -> dict[str, Any]:
    """Run `job`; print the table and write the files (process 0); return the results.json object."""
    from phijax.plugins.registry import get_registry

    started = time.perf_counter()
    evaluators = build_evaluators(job.evaluators, limit=job.limit)
    runs: list[PolicyRun] = []
    for spec in job.all_policies:
        load_start = time.perf_counter()
        policy = get_registry().create("backends", spec.backend, mesh=job.mesh, **spec.factory_options())
        load_seconds = time.perf_counter() - load_start
        run = run_evaluators(
            policy,
            evaluators,
            seed=job.seed,
            progress=progress,
            name=_unique(str(getattr(policy, "name", spec.backend)), [r.name for r in runs]),
        )
        run.seconds["load"] = load_seconds
        runs.append(run)
        del policy  # free the model before loading the next one
    report = results_json(job, runs, time.perf_counter() - started)
    if _is_process_zero():
        print(format_table(runs))
        write_outputs(Path(job.output_dir), report, runs if job.log_samples else [])
    return report


def _unique(name: str, taken: list[str]) -> str:
    n, candidate = 2, name
    while candidate in taken:
        candidate, n = f"{name}#{n}", n + 1
    return candidate


def _is_process_zero() -> bool:
    import sys

    jax = sys.modules.get("jax")
    return jax is None or jax.process_index() == 0


def results_json(job: EvalJob, runs: Sequence[PolicyRun], total_seconds: float) -> dict[str, Any]:
    """The results.json object: metrics, stderrs and sample counts per policy × evaluator, config, provenance."""
    results = {
        run.name: {
            key: {
                "metrics": r.metrics,
                "stderr": r.stderr,
                "samples": len(r.samples),
                "requests": run.requests[key],
                "seconds": round(run.seconds[key], 3),
            }
            for key, r in run.results.items()
        }
        for run in runs
    }
    timings = {run.name: {k: round(v, 3) for k, v in run.seconds.items()} for run in runs}
    timings["total"] = round(total_seconds, 3)  # type: ignore[assignment]
    return {"results": results, "config": to_dict(job), "versions": package_versions(), "timings": timings}


def package_versions() -> dict[str, str]:
    """Python and the installed versions of the packages that decide a score."""
    found = {"python": platform.python_version()}
    for dist in VERSIONED:
        try:
            found[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return found


def format_table(runs: Sequence[PolicyRun]) -> str:
    """policy × evaluator × metric, value ± standard error and the number of scored items."""
    rows = [("policy", "evaluator", "metric", "value", "± stderr", "n")]
    for run in runs:
        for key, result in run.results.items():
            for metric, value in sorted(result.metrics.items()):
                err = result.stderr.get(metric)
                rows.append(
                    (
                        run.name,
                        key,
                        metric,
                        f"{value:.4f}",
                        "" if err is None else f"± {err:.4f}",
                        str(len(result.samples) or ""),
                    )
                )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(cell.ljust(w) if i < 3 else cell.rjust(w) for i, (cell, w) in enumerate(zip(r, widths))) for r in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(line.rstrip() for line in lines)


def write_outputs(directory: Path, report: dict[str, Any], runs: Sequence[PolicyRun]) -> list[Path]:
    """results.json and, for `runs` given, samples_<evaluator>.jsonl (every policy's samples, tagged)."""
    directory.mkdir(parents=True, exist_ok=True)
    files = {directory / "results.json": json.dumps(report, indent=2, default=str) + "\n"}
    keys = sorted({key for run in runs for key in run.results})
    for key in keys:
        lines = [
            json.dumps({"policy": run.name, **s}, default=str)
            for run in runs
            for s in (run.results[key].samples if key in run.results else [])
        ]
        files[directory / f"samples_{_file_safe(key)}.jsonl"] = "".join(line + "\n" for line in lines)
    for path, text in files.items():
        partial = path.with_name(f".{path.name}.partial")
        partial.write_text(text)
        os.replace(partial, path)  # a reader sees the old file or the new one, never half of one
    return list(files)


def _file_safe(key: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in key)

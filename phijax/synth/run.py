"""`phijax synth`: run the stages of a `SynthJob`, each a generator over seed records, resumably.

For each stage: read the seeds, skip those already done (`shards.recover`), run the generator on each
remaining seed in a thread pool (`synth.concurrency` at once; requests through the cached policy), and
write each seed's records in one write with provenance. A seed whose request failed after the backend's
retries is counted with its reason and left undone (a re-run retries it); more than `max_failures` stops
the stage. Everything is checked before anything is spent: generators, templates, capabilities.
"""

from __future__ import annotations

import collections
import fcntl
import hashlib
import json
import os
import sys
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from phijax.config.loader import dump_config
from phijax.plugins.protocols import GENERATE
from phijax.synth import PROVENANCE, REJECTED, RequestFailed, SynthError
from phijax.synth.cache import CachedPolicy, RequestCache
from phijax.synth.config import BackendSpec, StageSpec, SynthJob
from phijax.synth.seeds import read_seeds
from phijax.synth.shards import STATE, ShardWriter, recover


@dataclass
class StageSummary:
    """What one stage did: the end-of-stage table row, also written to `OUTPUT/_synth/summary.json`."""

    stage: str
    generator: str
    seeds_in: int = 0
    already_done: int = 0
    records_out: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    failed: dict[str, int] = field(default_factory=dict)
    requests: int = 0
    cache_hits: int = 0
    tokens: int = 0
    wall_s: float = 0.0

    def line(self) -> str:
        rej = ", ".join(f"{k} {v}" for k, v in sorted(self.rejected.items())) or "none"
        fail = ", ".join(f"{k} {v}" for k, v in sorted(self.failed.items())) or "none"
        return (
            f"{self.stage} ({self.generator}): seeds {self.seeds_in} ({self.already_done} already done), "
            f"records {self.records_out}, rejected {rej}, failed {fail}, requests {self.requests}, "
            f"cache hits {self.cache_hits}, tokens {self.tokens}, {self.wall_s:.1f} s"
        )


@dataclass
class _Stage:
    spec: StageSpec
    name: str
    generator: Any
    requires: frozenset[str]
    options_hash: str


def run_synth(job: SynthJob, *, policy: Any | None = None, registry: Any | None = None) -> list[StageSummary]:
    """Run every stage of `job` in order; return their summaries. `policy`: use this one instead of building it."""
    from phijax.plugins.registry import get_registry

    registry = registry or get_registry()
    if not job.synth.stages:
        raise SynthError("synth.stages is empty: add at least one {generator, input, output} stage")
    stages = [_build_stage(registry, spec) for spec in job.synth.stages]
    needs = frozenset().union(*(s.requires for s in stages))
    if needs and policy is None:
        policy = make_policy(registry, job.policy, job.mesh)
    _check_capabilities(stages, policy, job.policy)
    cache = RequestCache(job.synth.cache_dir)
    cached = CachedPolicy(policy, cache) if policy is not None else None
    if cached is not None and job.policy.backend == "local":
        from phijax.synth.batching import BatchingPolicy

        cached.policy = BatchingPolicy(cached.policy, max_batch=max(1, job.synth.concurrency))
    summaries = []
    try:
        for stage in stages:
            summaries.append(run_stage(job, stage, cached))
            print(summaries[-1].line(), file=sys.stderr)
    finally:
        cache.close()
    return summaries


def make_policy(registry: Any, spec: BackendSpec, mesh: Any) -> Any:
    """The policy of `spec` through the `backends` registry kind."""
    from phijax.plugins.registry import KINDS

    if "backends" not in KINDS:
        raise SynthError("this phijax has no `backends` plugin kind yet; pass a policy to run_synth")
    return registry.create("backends", spec.backend, mesh=mesh, **spec.options)


def _build_stage(registry: Any, spec: StageSpec) -> _Stage:
    generator = registry.create("synthetic_generators", spec.generator, **spec.options)
    requires = frozenset(getattr(generator, "requires", frozenset({GENERATE})))
    blob = json.dumps([spec.generator, spec.options], sort_keys=True, default=str)
    name = spec.name or Path(spec.output).name
    return _Stage(spec, name, generator, requires, hashlib.sha256(blob.encode()).hexdigest()[:16])


def _check_capabilities(stages: list[_Stage], policy: Any, spec: BackendSpec) -> None:
    have = frozenset(getattr(policy, "capabilities", frozenset()))
    for stage in stages:
        missing = sorted(stage.requires - have)
        if missing:
            raise SynthError(
                f"stage {stage.name} ({stage.spec.generator}) needs the {missing[0]} capability, which "
                f"backend {spec.backend} lacks (it has: {', '.join(sorted(have)) or 'none'}); "
                f"use a server or model that offers it"
            )


def _seed_of(run_seed: int, stage: str, seed_id: str) -> int:
    digest = hashlib.sha256(f"{run_seed}|{stage}|{seed_id}".encode()).digest()  # stage: generator + options
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


def _lock(output: Path) -> int:
    (output / STATE).mkdir(parents=True, exist_ok=True)
    fd = os.open(output / STATE / "lock", os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise SynthError(f"another phijax synth is writing {output}; wait for it or choose another output") from None
    return fd


def run_stage(job: SynthJob, stage: _Stage, policy: CachedPolicy | None) -> StageSummary:
    """Run one stage to the end (or until more than max_failures seeds failed); write its summary."""
    output = Path(stage.spec.output)
    output.mkdir(parents=True, exist_ok=True)
    lock = _lock(output)
    summary = StageSummary(stage.name, stage.spec.generator)
    start, before = time.monotonic(), _usage(policy)
    try:
        (output / STATE / "config.yaml").write_text(dump_config(job))
        seeds = read_seeds(stage.spec.input, stage.spec.limit)
        done = recover(output)
        todo = [(sid, rec) for sid, rec in seeds if sid not in done]
        summary.seeds_in, summary.already_done = len(seeds), len(seeds) - len(todo)
        writer = ShardWriter(output, job.synth.shard_records)
        try:
            _run_seeds(job, stage, policy, todo, writer, summary)
        finally:
            writer.close()
    finally:
        after = _usage(policy)
        summary.requests, summary.cache_hits, summary.tokens = (a - b for a, b in zip(after, before, strict=True))
        summary.wall_s = time.monotonic() - start
        (output / STATE / "summary.json").write_text(json.dumps(asdict(summary), indent=1) + "\n")
        os.close(lock)
    return summary


def _usage(policy: CachedPolicy | None) -> tuple[int, int, int]:
    if policy is None:
        return (0, 0, 0)
    return (policy.stats.requests, policy.stats.cache_hits, int(getattr(policy.policy, "tokens_used", 0)))


def _run_seeds(
    job: SynthJob, stage: _Stage, policy: Any, todo: list, writer: ShardWriter, summary: StageSummary
) -> None:
    """Seeds through a bounded thread pool; results written by this thread only, in seed order.

    Seed order (not completion order) makes a stage's output the same file content on every run, so a
    recipe that trains on it is repeatable; the window of 2 × concurrency seeds in flight bounds how far a
    slow seed holds the others back.
    """
    limit = stage.spec.max_failures if stage.spec.max_failures is not None else job.synth.max_failures
    progress = _Progress(stage.name, len(todo), summary, policy, enabled=job.synth.progress)
    pending: collections.deque[tuple[Future, str]] = collections.deque()
    queue = iter(todo)
    with ThreadPoolExecutor(max_workers=max(1, job.synth.concurrency), thread_name_prefix="synth") as pool:
        try:
            while True:
                while len(pending) < 2 * max(1, job.synth.concurrency):
                    item = next(queue, None)
                    if item is None:
                        break
                    sid, record = item
                    fut = pool.submit(
                        _process_seed, stage, policy, sid, record, _seed_of(job.synth.seed, stage.options_hash, sid)
                    )
                    pending.append((fut, sid))
                if not pending:
                    break
                wait([pending[0][0]])  # results are taken in seed order: waiting on any other would spin
                while pending and pending[0][0].done():
                    fut, sid = pending.popleft()
                    _collect(fut, sid, writer, summary)
                    progress.update()
                if sum(summary.failed.values()) > limit:
                    raise SynthError(_failure_line(stage.name, summary.failed, limit))
        finally:
            for fut, _ in pending:
                fut.cancel()
            progress.close()


def _collect(fut: Future, sid: str, writer: ShardWriter, summary: StageSummary) -> None:
    outcome = fut.result()  # PhijaxError (bad template, plugin bug) propagates: the stage stops
    if isinstance(outcome, RequestFailed):
        summary.failed[outcome.reason] = summary.failed.get(outcome.reason, 0) + 1
        return
    records, rejected = outcome
    writer.write_seed(sid, records, rejected)
    summary.records_out += len(records)
    for reason, n in rejected.items():
        summary.rejected[reason] = summary.rejected.get(reason, 0) + n


def _failure_line(stage: str, failed: dict[str, int], limit: int) -> str:
    reasons = ", ".join(f"{k} {v}" for k, v in sorted(failed.items()))
    return (
        f"stage {stage}: {sum(failed.values())} seeds failed ({reasons}), more than max_failures={limit}; "
        f"fix the backend or raise max_failures, then run the same command again to resume"
    )


def _process_seed(
    stage: _Stage, policy: Any, sid: str, record: dict[str, Any], seed: int
) -> tuple[list[dict[str, Any]], dict[str, int]] | RequestFailed:
    """Run the generator on one seed: its finished records with provenance and its rejections by reason."""
    try:
        made = list(stage.generator([record], policy=policy, seed=seed))
    except RequestFailed as err:
        return err
    except SynthError:
        raise
    except Exception as err:  # a generator's bug: one line naming it, the traceback kept as the cause
        raise SynthError(
            f"synthetic generator '{stage.spec.generator}' failed on seed {sid}: "
            f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
        ) from err
    rejected = Counter(str(r[REJECTED]) for r in made if REJECTED in r)
    kept = [r for r in made if REJECTED not in r]
    return [_with_provenance(r, stage, policy, sid, i, len(kept)) for i, r in enumerate(kept)], dict(rejected)


def _with_provenance(
    record: dict[str, Any], stage: _Stage, policy: Any, sid: str, index: int, of: int
) -> dict[str, Any]:
    out = {k: v for k, v in record.items() if k not in (PROVENANCE, "provenance")}
    backend, _, model = (getattr(policy, "name", "") or "none:").partition(":")
    prov = {
        "stage": stage.name,
        "generator": stage.spec.generator,
        "options_hash": stage.options_hash,
        "seed_id": sid,
        "backend": backend if stage.requires else None,
        "model": model if stage.requires else None,
        "template_hash": None,
        "sample_index": 0,
        **record.get(PROVENANCE, {}),
        "index": index,
        "of": of,
    }
    if isinstance(record.get("provenance"), dict):
        prov["parent"] = record["provenance"]
    out["id"] = hashlib.sha256(f"{stage.name}|{sid}|{index}".encode()).hexdigest()[:16]
    out["provenance"] = prov
    return out


class _Progress:
    """One stderr line, redrawn at most twice a second: seeds, records/s, acceptance rate, cache hits."""

    def __init__(self, stage: str, total: int, summary: StageSummary, policy: Any, enabled: bool):
        self.stage, self.total, self.summary, self.policy = stage, total, summary, policy
        self.enabled = enabled and total > 0
        self.done, self.start, self.last = 0, time.monotonic(), 0.0

    def update(self) -> None:
        self.done += 1
        now = time.monotonic()
        if self.enabled and (now - self.last > 0.5 or self.done == self.total):
            self.last = now
            s = self.summary
            made = s.records_out + sum(s.rejected.values())
            accept = f"{100 * s.records_out / made:.0f}%" if made else "-"
            hits = self.policy.stats.cache_hits if self.policy is not None else 0
            rate = s.records_out / max(now - self.start, 1e-9)
            print(
                f"\r{self.stage}: {self.done}/{self.total} seeds  {rate:.1f} records/s  accept {accept}  "
                f"cache hits {hits}  failed {sum(s.failed.values())}",
                end="",
                file=sys.stderr,
                flush=True,
            )

    def close(self) -> None:
        if self.enabled and self.done:
            print(file=sys.stderr)


def iter_records(output: str | Path) -> Iterator[dict[str, Any]]:
    """Every record of a stage's output (for tests and tools)."""
    from phijax.synth.shards import shard_paths

    for path in shard_paths(Path(output)):
        for line in path.read_text().splitlines():
            yield json.loads(line)

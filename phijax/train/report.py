"""What a run tells its operator: the start banner, the progress line (with an ETA), the end summary.

The banner says where the run writes, what it trains (model, parameters), on what (mesh, devices),
whether it resumed and from which step, and the data it reads; the summary says what it did (steps,
tokens, wall time, final and best loss, tokens/s, MFU) and where its last checkpoint is. `Meter`
turns each logged step into the metrics.jsonl record: its throughput since the last log, and the
cumulative count of what the objective trains on (`trained_tokens`, or `pairs`) beside the step's.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

import jax

from phijax.train import metrics as mfu_lib

log = logging.getLogger("phijax.train")


class Meter:
    """Step metrics → logged records; also keeps the run's totals for the end summary."""

    def __init__(self, job: Any, mesh: Any, objective: Any, start_step: int, trained_before: float = 0.0):
        self.job, self.objective = job, objective
        self.peak = mfu_lib.peak_flops(list(mesh.devices.flat), job.train.peak_tflops)
        self.started = self.last_time = time.perf_counter()
        self.start_step = start_step
        self.steps = self.tokens = 0  # since the last log
        self.session_tokens = 0  # positions run this attempt (throughput)
        self.trained = trained_before  # cumulative weight (trained tokens or pairs) over the whole run
        self.losses: dict[int, float] = {}

    def count(self, local: dict[str, Any]) -> None:
        """Add one step's positions (all processes')."""
        tokens = self.objective.tokens(local)
        self.steps += 1
        self.tokens += tokens
        self.session_tokens += tokens

    def add_trained(self, weight: float) -> None:
        self.trained += weight

    def record(self, step: int, values: dict[str, float], lr: float) -> dict[str, Any]:
        """The logged record of `step` from its host metrics `values` (loss, grad_norm, weight, ...)."""
        now = time.perf_counter()
        elapsed, self.last_time = now - self.last_time, now
        tokens_per_s = self.tokens / elapsed if elapsed > 0 else 0.0
        weight_name = self.objective.weight_name
        values = dict(values)
        record = {
            "loss": values.pop("loss"),
            "lr": lr,
            "grad_norm": values.pop("grad_norm"),
            f"step_{weight_name}": values.pop(weight_name),
            weight_name: self.trained,
            **values,
            "tokens_per_s": tokens_per_s,
            "step_time_s": elapsed / max(self.steps, 1),
            "mfu": mfu_lib.mfu(self.job.model, self.job.train.seq_len, tokens_per_s, self.peak),
        }
        self.steps = self.tokens = 0
        self.losses[step] = record["loss"]
        progress(step, self.job.train.steps, record, self.objective.progress, self.eta(step))
        return record

    def eta(self, step: int) -> float | None:
        """Seconds left at the mean step time of this attempt (None before a step is done)."""
        done = step - self.start_step
        if done <= 0:
            return None
        return (time.perf_counter() - self.started) / done * (self.job.train.steps - step)

    def summary(self, step: int, last_checkpoint: str | None) -> str:
        """The end summary line."""
        wall = time.perf_counter() - self.started
        tokens_per_s = self.session_tokens / wall if wall > 0 else 0.0
        mfu = mfu_lib.mfu(self.job.model, self.job.train.seq_len, tokens_per_s, self.peak)
        finite = {s: v for s, v in self.losses.items() if v == v}
        final = f"{self.losses[max(self.losses)]:.4f}" if self.losses else "-"
        best = min(finite.items(), key=lambda kv: kv[1]) if finite else None
        return (
            f"done: steps {self.start_step}->{step} of {self.job.train.steps}, {self.objective.weight_name} "
            f"{self.trained:,.0f}, wall {duration(wall)}, loss final {final}"
            + (f" best {best[1]:.4f} (step {best[0]})" if best else "")
            + f", {tokens_per_s:,.0f} tokens/s"
            + (f", mfu {mfu:.1%}" if mfu is not None else "")
            + f"; last checkpoint {last_checkpoint or 'none'}"
        )


def duration(seconds: float) -> str:
    """1h02m, 3m05s or 12.3s."""
    if seconds >= 3600:
        return f"{int(seconds // 3600)}h{int(seconds % 3600 // 60):02d}m"
    if seconds >= 60:
        return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"
    return f"{seconds:.1f}s"


def progress(step: int, total: int, record: dict[str, Any], extra: dict[str, str], eta: float | None = None) -> None:
    """One progress line on stderr (rewritten in place on a terminal)."""
    more = "".join(f" {label} {record[key]:.4f}" for key, label in extra.items() if key in record)
    mfu = f" mfu {record['mfu']:.1%}" if record["mfu"] is not None else ""
    left = "" if eta is None else f" eta {duration(eta)}"
    line = (
        f"step {step}/{total} loss {record['loss']:.4f} lr {record['lr']:.2e} "
        f"grad_norm {record['grad_norm']:.3f}{more} tokens/s {record['tokens_per_s']:,.0f}{mfu}{left}"
    )
    if sys.stderr.isatty():
        end = "\n" if step == total else ""
        print(f"\r{line}\033[K", end=end, file=sys.stderr, flush=True)
    else:
        print(line, file=sys.stderr, flush=True)


def banner(job: Any, mesh: Any, params: int, resumed: int | None, shares: str, checkpoints: Any) -> list[str]:
    """The start banner's lines."""
    shape = " x ".join(f"{name} {size}" for name, size in mesh.shape.items())
    devices = list(mesh.devices.flat)
    start = (
        f"resumed from step {resumed} of {checkpoints.directory}"
        if resumed is not None
        else "fresh start" + (f" from {job.checkpoint.init_from}" if job.checkpoint.init_from else "") + " (step 0)"
    )
    return [
        f"run {job.run_dir} ({job.train.stage}, {job.train.steps} steps of {job.train.global_batch} x "
        f"{job.train.seq_len})",
        f"model {job.model.preset or 'custom'}: {params:,} parameters; mesh {shape} over {len(devices)} "
        f"{devices[0].platform} device(s), {jax.process_count()} process(es)",
        start,
        f"data: {shares}",
    ]


def log_banner(lines: list[str]) -> None:
    """The banner on process 0; every process says where it resumed from (each restores its own state)."""
    for i, line in enumerate(lines):
        if jax.process_index() == 0 or i == 2:
            log.info("%s", line)

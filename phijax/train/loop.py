"""`phijax train`: the training loop of every next-token stage (pretraining, midtraining).

A run directory holds `config.yaml` (resolved config), `metrics.jsonl` and `checkpoints/`. A run
directory with checkpoints is resumed from the newest complete one, or refused; it is never silently
restarted. SIGTERM (preemption) saves a checkpoint at the end of the current step and exits 0.
"""

from __future__ import annotations

import logging
import signal
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import jax
import numpy as np
import yaml

from phijax.config import Config, config_from_dict, write_config
from phijax.errors import CheckpointError, ConfigError
from phijax.parallel import distributed
from phijax.parallel.mesh import batch_sharding, build_mesh, request_cpu_devices
from phijax.plugins.registry import get_registry
from phijax.stages import STAGES
from phijax.train import metrics as mfu_lib
from phijax.train.checkpoint import Checkpoints
from phijax.train.optim import learning_rate_schedule, make_optimizer
from phijax.train.state import StateLayout, TrainState, initial_params, state_from_params, state_layout
from phijax.train.step import MODEL_INPUTS, make_train_step

log = logging.getLogger("phijax.train")


@dataclass
class TrainResult:
    """What a call of `train` did: the last step reached and the losses it logged."""

    step: int
    losses: dict[int, float] = field(default_factory=dict)
    preempted: bool = False
    resumed_from: int | None = None


def train(cfg: Config) -> TrainResult:
    """Run (or resume) the configured stage until `train.steps`, SIGTERM, or the data runs out."""
    if cfg.train.stage == "dpo":  # preference pairs and a reference model: its own loop
        from phijax.train.dpo_loop import train_dpo

        return train_dpo(cfg)
    console_logging()
    request_cpu_devices(cfg.mesh.cpu_devices)
    distributed.initialize()
    STAGES[cfg.train.stage](cfg)
    _check_batch(cfg)
    mesh = build_mesh(cfg.mesh)
    tx = make_optimizer(cfg.optim, cfg.train.steps)
    layout = state_layout(cfg.model, tx, mesh, cfg.mesh.rules)

    from phijax.data.pipeline import build_batches  # late: keeps `phijax train --help` light

    batches = build_batches(cfg, jax.process_index(), jax.process_count())
    checkpoints = Checkpoints(cfg.run_dir, cfg.checkpoint)
    try:
        claim_run_dir(cfg, Path(cfg.run_dir), has_checkpoints=bool(checkpoints.steps()))
        step, state, resumed = _start(cfg, tx, layout, checkpoints, batches)
        if step >= cfg.train.steps:
            log.info("run already complete at step %d: raise train.steps to train further", step)
        train_step = make_train_step(layout, tx, batch_sharding(mesh, cfg.mesh.rules),
                                     cfg.train.grad_accum, cfg.train.loss_chunk)
        result = TrainResult(step=step, resumed_from=resumed)
        _run_steps(cfg, mesh, train_step, state, batches, checkpoints, result)
    finally:
        checkpoints.close()
    return result


def _run_steps(cfg: Config, mesh, train_step, state: TrainState, batches, checkpoints: Checkpoints,
               result: TrainResult) -> None:
    """Step from `result.step` to `train.steps`, logging and checkpointing; updates `result`."""
    schedule = learning_rate_schedule(cfg.optim, cfg.train.steps)
    with bookkeeping(cfg, checkpoints, result, {"seed": cfg.train.seed}) as books:
        meter = _Meter(cfg, mesh)
        while result.step < cfg.train.steps:
            try:
                batch = next(batches)
            except StopIteration:
                log.info("data exhausted at step %d (a source reached its epoch cap)", result.step)
                checkpoints.save(result.step, state, batches, books.meta, force=True)
                return
            state, step_metrics = train_step(state, _global_batch(batch, mesh, cfg))
            result.step += 1
            if books.after_step(state, batches, lambda s: meter.record(s, step_metrics, float(schedule(s - 1)))):
                return


@dataclass
class Bookkeeper:
    """What every training loop does after a step: log, checkpoint, and obey SIGTERM."""

    cfg: Config
    checkpoints: Checkpoints
    result: TrainResult
    meta: dict[str, Any]
    sinks: list[Any]
    preempted: Callable[[], bool]

    def after_step(self, state: TrainState, batches: Any, record: Callable[[int], dict[str, Any]]) -> bool:
        """Book `result.step` (record(step) builds the logged metrics); True when the run must stop."""
        step, cfg = self.result.step, self.cfg
        if step % cfg.train.log_every == 0 or step == cfg.train.steps:
            values = record(step)
            self.result.losses[step] = values["loss"]
            for sink in self.sinks:
                sink.log(step, values)
        if step % cfg.checkpoint.every == 0 or step == cfg.train.steps:
            self.checkpoints.save(step, state, batches, self.meta)
        if self.preempted():
            log.info("SIGTERM: saving step %d and exiting", step)
            self.checkpoints.save(step, state, batches, self.meta, force=True)
            self.result.preempted = True
            return True
        return False


@contextmanager
def bookkeeping(cfg: Config, checkpoints: Checkpoints, result: TrainResult, meta: dict[str, Any]) -> Iterator[Bookkeeper]:
    """A `Bookkeeper` with the run's metric sinks open and SIGTERM caught, for one training loop."""
    with _metric_sinks(cfg, Path(cfg.run_dir)) as sinks, _preemption_guard() as preempted:
        yield Bookkeeper(cfg, checkpoints, result, meta, sinks, preempted)


def console_logging() -> None:
    """phijax's own INFO messages (resume, preemption, data) go to stderr, once per process."""
    logger = logging.getLogger("phijax")
    logger.setLevel(logging.INFO)
    if not any(getattr(h, "phijax_console", False) for h in logger.handlers):
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("phijax: %(message)s"))
        handler.phijax_console = True  # type: ignore[attr-defined]
        logger.addHandler(handler)


def _check_batch(cfg: Config) -> None:
    if cfg.train.global_batch % cfg.train.grad_accum:
        raise ConfigError(f"train.global_batch ({cfg.train.global_batch}) must be a multiple of train.grad_accum ({cfg.train.grad_accum})")


def claim_run_dir(cfg: Config, run_dir: Path, has_checkpoints: bool) -> None:
    """Write config.yaml; a run with checkpoints may only be resumed with the same model."""
    previous = run_dir / "config.yaml"
    if has_checkpoints and previous.is_file():
        old = config_from_dict(yaml.safe_load(previous.read_text()))
        if old.model != cfg.model:
            raise CheckpointError(
                f"{run_dir} holds checkpoints of a different model config: resume with the same model or use a new run_dir"
            )
    if jax.process_index() == 0:
        write_config(cfg, run_dir)


def _start(cfg: Config, tx, layout: StateLayout, checkpoints: Checkpoints, batches) -> tuple[int, TrainState, int | None]:
    """(step, state, resumed step) from the run's newest checkpoint, `init_from`, or a fresh init."""
    if checkpoints.steps():
        restored = checkpoints.restore_latest(layout, batches)
        if restored is None:
            raise CheckpointError(
                f"no checkpoint in {checkpoints.directory} can be restored; move the directory away to start afresh"
            )
        step, state, _ = restored
        log.info("resumed from step %d of %s", step, checkpoints.directory)
        return step, state, step
    params = initial_params(cfg.model, layout, cfg.train.seed, cfg.checkpoint.init_from)
    return 0, state_from_params(params, tx, layout), None


def _global_batch(local: dict[str, np.ndarray], mesh, cfg: Config) -> dict[str, jax.Array]:
    """This process's rows → global arrays sharded over the batch axes."""
    sharding = batch_sharding(mesh, cfg.mesh.rules)
    return {k: jax.make_array_from_process_local_data(sharding, np.asarray(local[k])) for k in MODEL_INPUTS}


class _Meter:
    """Turns step metrics into a logged record with throughput and MFU for the interval since the last log."""

    def __init__(self, cfg: Config, mesh):
        self.cfg = cfg
        self.tokens_per_step = cfg.train.global_batch * cfg.train.seq_len
        self.peak = mfu_lib.peak_flops(list(mesh.devices.flat), cfg.train.peak_tflops)
        self.last_time = time.perf_counter()
        self.last_step: int | None = None

    def record(self, step: int, step_metrics: dict[str, jax.Array], lr: float) -> dict[str, Any]:
        values = {k: float(v) for k, v in jax.device_get(step_metrics).items()}
        now = time.perf_counter()
        steps = step - (self.last_step if self.last_step is not None else step - 1)
        elapsed = now - self.last_time
        self.last_time, self.last_step = now, step
        tokens_per_s = steps * self.tokens_per_step / elapsed
        record = {
            "loss": values["loss"], "lr": lr, "grad_norm": values["grad_norm"],
            "tokens_per_s": tokens_per_s, "step_time_s": elapsed / steps,
            "mfu": mfu_lib.mfu(self.cfg.model, self.cfg.train.seq_len, tokens_per_s, self.peak),
            "trained_tokens": values["trained_tokens"],
        }
        _progress(step, self.cfg.train.steps, record)
        return record


def _progress(step: int, total: int, record: dict[str, Any]) -> None:
    mfu = f" mfu {record['mfu']:.1%}" if record["mfu"] is not None else ""
    line = (f"step {step}/{total} loss {record['loss']:.4f} lr {record['lr']:.2e} "
            f"grad_norm {record['grad_norm']:.3f} tokens/s {record['tokens_per_s']:,.0f}{mfu}")
    if sys.stderr.isatty():
        end = "\n" if step == total else ""
        print(f"\r{line}\033[K", end=end, file=sys.stderr, flush=True)
    else:
        print(line, file=sys.stderr, flush=True)


@contextmanager
def _metric_sinks(cfg: Config, run_dir: Path) -> Iterator[list[Any]]:
    """The configured metric loggers (process 0 only), closed on exit."""
    sinks = []
    if jax.process_index() == 0:
        registry = get_registry()
        sinks = [registry.create("metric_loggers", name, run_dir) for name in cfg.train.metric_loggers]
    try:
        yield sinks
    finally:
        for sink in sinks:
            sink.close()


@contextmanager
def _preemption_guard() -> Iterator[Any]:
    """While active, SIGTERM only sets a flag that the loop checks after each step."""
    received = []
    previous = signal.signal(signal.SIGTERM, lambda *_: received.append(True))
    try:
        yield lambda: bool(received)
    finally:
        signal.signal(signal.SIGTERM, previous)

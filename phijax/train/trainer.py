"""The one training loop: `phijax train` (any `train.stage`) and `phijax dpo`.

    validate the whole job (nothing written before) → devices, mesh, the run directory's lock
    → resume the newest complete checkpoint (the LR schedule it was laid out with), or refuse a run
      directory of another model, or start from `checkpoint.init_from` / a fresh init
    → the objective's preparation (DPO: reference log-probs) → config.yaml + configs/attempt-N.yaml
    → the banner → steps of the one jitted step
    → after each: a non-finite loss is skipped (`train.max_bad_steps`) or stops the run; log (loss,
      lr, grad_norm, cumulative trained tokens, tokens/s, MFU, ETA), checkpoint, hooks, signals
    → the end summary

A run directory holds `config.yaml` (the resolved job), `configs/`, `metrics.jsonl` and `checkpoints/`.
A run directory with checkpoints is resumed from the newest complete one, or refused; it is never
silently restarted. SIGTERM (preemption) or Ctrl-C saves a checkpoint at the end of the current step
(or lets a save in progress finish, the last step's too) and exits; a second Ctrl-C aborts at once. A
finished run in a directory this process cannot write is reported complete with nothing written.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import signal
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jax

from phijax.errors import CheckpointError, PhijaxError
from phijax.parallel import distributed
from phijax.parallel.mesh import batch_sharding, build_mesh, request_cpu_devices
from phijax.plugins.registry import get_registry
from phijax.train.checkpoint import Checkpoints
from phijax.train.config import TrainJob, check_batch_divides, rows_per_example
from phijax.train.hooks import Hook, HookContext, run_hooks
from phijax.train.lock import RunLock
from phijax.train.objectives import Objective, objective_for
from phijax.train.optim import learning_rate_schedule, make_optimizer, schedule_record
from phijax.train.report import Meter, banner, log_banner
from phijax.train.rundir import check_same_model, next_attempt, write_run_config
from phijax.train.state import StateLayout, TrainState, initial_params, state_from_params, state_layout
from phijax.train.step import make_step

log = logging.getLogger("phijax.train")


class TrainingDiverged(PhijaxError):
    """The loss or gradient norm stayed non-finite for more steps in a row than `train.max_bad_steps`."""


@dataclass
class TrainResult:
    """What a call of `train` did: the last step reached and the losses it logged."""

    step: int
    losses: dict[int, float] = field(default_factory=dict)
    preempted: bool = False
    resumed_from: int | None = None
    signal: str | None = None  # SIGTERM or SIGINT when a signal ended the run
    bad_steps: int = 0  # non-finite steps skipped


@dataclass
class Run:
    """The parts of one run the loop steps through (built by `train`'s start-up)."""

    job: TrainJob
    objective: Objective
    mesh: jax.sharding.Mesh
    layout: StateLayout
    step_fn: Callable[..., tuple[TrainState, dict[str, jax.Array]]]
    batches: Any
    checkpoints: Checkpoints
    schedule: Callable[[int], Any]
    extra: Any = None


def train(job: TrainJob, hooks: Sequence[Hook] = ()) -> TrainResult:
    """Run (or resume) `job`'s objective until `train.steps`, a signal, divergence or the data's end."""
    console_logging()
    job.validate()  # before anything is written (plugin names included)
    request_cpu_devices(job.mesh.cpu_devices)
    distributed.initialize()
    mesh = build_mesh(job.mesh)
    sharding = batch_sharding(mesh, job.mesh.rules)
    devices = math.prod(sharding.mesh.shape[a] for a in _batch_axes(sharding))
    check_batch_divides(job.train.global_batch, devices, rows_per_example(job.train.stage))
    finished = _finished_read_only(job)
    if finished is not None:
        return finished
    with _run_lock(Path(job.run_dir)), _signal_guard() as received, _quiet_closed_loops():
        return _train_locked(job, mesh, sharding, hooks, received)


def _finished_read_only(job: TrainJob) -> TrainResult | None:
    """A finished run in a directory this process cannot write (a shared results folder): said in one line,
    nothing written, no lock taken; None for any other run (an unwritable one then fails at its lock)."""
    run_dir = Path(job.run_dir)
    if not run_dir.is_dir() or os.access(run_dir, os.W_OK):
        return None
    checkpoints = Checkpoints(run_dir, job.checkpoint, read_only=True)
    try:
        steps = checkpoints.steps()
    finally:
        checkpoints.close()
    if not steps or steps[-1] < job.train.steps:
        return None
    log.info(
        "run already complete at step %d in %s (read-only: nothing written); to train further, copy it to a "
        "writable run_dir and raise train.steps (with optim.extend)",
        steps[-1],
        run_dir,
    )
    return TrainResult(step=steps[-1], resumed_from=steps[-1])


def _train_locked(job: TrainJob, mesh, sharding, hooks: Sequence[Hook], received: list[str]) -> TrainResult:
    """Start-up and the steps, with the run directory locked and signals caught."""
    objective = objective_for(job)
    checkpoints = Checkpoints(job.run_dir, job.checkpoint)
    try:
        check_same_model(job, Path(job.run_dir), has_checkpoints=bool(checkpoints.steps()))
        meta = checkpoints.newest_meta() or {}
        tx = make_optimizer(job.optim, job.train.steps, meta.get("schedule"))
        layout = state_layout(job.model, tx, mesh, job.mesh.rules)
        checkpoints.state_bytes = _state_bytes(layout)
        batches = objective.batches(job, sharding)
        _say_unfinished(checkpoints)
        initial = _once(lambda: initial_params(job.model, layout, job.train.seed, job.checkpoint.init_from))
        extra = objective.prepare(layout, sharding, initial)
        step, state, resumed, meta = _start(job, tx, layout, checkpoints, batches, initial)
        attempt = next_attempt(Path(job.run_dir))
        write_run_config(job, Path(job.run_dir), attempt)
        _remove_unfinished(checkpoints)  # start-up has passed: what an interrupted save left can go
        params = sum(math.prod(a.shape) for a in jax.tree.leaves(layout.abstract["params"]))
        log_banner(banner(job, mesh, params, resumed, _data_line(job), checkpoints))
        if step >= job.train.steps:
            log.info("run already complete at step %d: raise train.steps (with optim.extend) to train further", step)
        step_fn = make_step(layout, tx, sharding, objective, job.train.grad_accum)
        schedule = learning_rate_schedule(job.optim, job.train.steps, meta.get("schedule"))
        run = Run(job, objective, mesh, layout, step_fn, batches, checkpoints, schedule, extra)
        result = TrainResult(step=step, resumed_from=resumed)
        from phijax.eval.hook import eval_hooks  # train.eval: evaluators built before the first step

        record = {"schedule": meta.get("schedule") or schedule_record(job.optim, job.train.steps), "attempt": attempt}
        meter = Meter(job, mesh, objective, step, float(meta.get(objective.weight_name, 0.0)))
        _run_steps(run, state, sharding, result, [*hooks, *eval_hooks(job)], record, meter, received)
        checkpoints.wait()
        result.signal = result.signal or (received[0] if received else None)  # also one during the last save
        if jax.process_index() == 0:
            log.info("%s", meter.summary(result.step, _last_checkpoint(checkpoints)))
            _say_bad_records()
    finally:
        checkpoints.close()
    return result


def _run_steps(
    run: Run,
    state: TrainState,
    sharding,
    result: TrainResult,
    hooks: Sequence[Hook],
    record: dict[str, Any],
    meter: Meter,
    received: list[str],
) -> None:
    """Step from `result.step` to `train.steps`, logging, checkpointing and running hooks; updates `result`."""
    job = run.job
    meta = {"seed": job.train.seed, **run.objective.meta(), **record}
    with _metric_sinks(job, Path(job.run_dir)) as sinks:
        books = Bookkeeper(job, run.checkpoints, result, meta, sinks, received, meter)
        bad_in_row = 0
        while result.step < job.train.steps:
            try:
                local = next(run.batches)
            except StopIteration:
                log.info("data exhausted at step %d (a source reached its epoch cap)", result.step)
                books.save(state, run.batches, force=True)
                return
            meter.count(local)
            if result.step == meter.start_step:
                log.info("compiling the train step...")
            args = (state, run.objective.global_batch(local, sharding))
            state, step_metrics = run.step_fn(*args, *(() if run.extra is None else (run.extra,)))
            values = {k: float(v) for k, v in jax.device_get(step_metrics).items()}
            result.step += 1
            bad_in_row = _check_finite(values, result, bad_in_row, job, run.checkpoints)
            meter.add_trained(values[run.objective.weight_name] if bad_in_row == 0 else 0.0)
            values.pop("finite")
            if books.after_step(state, run.batches, lambda s: meter.record(s, values, float(run.schedule(s - 1)))):
                return
            if hooks:
                context = HookContext(result.step, state["params"], job, run.mesh, run.layout)
                books.log(result.step, run_hooks(hooks, context))


def _check_finite(values: dict[str, float], result: TrainResult, bad_in_row: int, job: TrainJob, checkpoints) -> int:
    """Bad steps in a row after this one; TrainingDiverged when more than `train.max_bad_steps`."""
    if values["finite"]:
        return 0
    bad_in_row += 1
    result.bad_steps += 1
    loss, norm, limit = values["loss"], values["grad_norm"], job.train.max_bad_steps
    if bad_in_row <= limit:
        log.warning(
            "step %d: loss %s, grad_norm %s: update skipped (%d of %d bad steps in a row allowed)",
            result.step,
            loss,
            norm,
            bad_in_row,
            limit,
        )
        return bad_in_row
    checkpoints.wait()
    kept = checkpoints.steps()
    last = f"the last good checkpoint is step {kept[-1]} in {checkpoints.directory}" if kept else "no checkpoint saved"
    raise TrainingDiverged(
        f"training diverged at step {result.step}: loss {loss}, grad_norm {norm} ({bad_in_row} non-finite step(s) "
        f"in a row; nothing non-finite was saved, {last}): lower optim.peak_lr, or set train.max_bad_steps=N "
        "to skip up to N bad steps in a row"
    )


@dataclass
class Bookkeeper:
    """What the loop does after a step: log, checkpoint, and obey SIGTERM / Ctrl-C."""

    job: TrainJob
    checkpoints: Checkpoints
    result: TrainResult
    meta: dict[str, Any]
    sinks: list[Any]
    received: list[str]
    meter: Meter

    def after_step(self, state: TrainState, batches: Any, record: Callable[[int], dict[str, Any]]) -> bool:
        """Book `result.step` (record(step) builds the logged metrics); True when the run must stop."""
        step, job = self.result.step, self.job
        self.checkpoints.poll()  # a failed asynchronous save stops the run now, not at the next save
        if step % job.train.log_every == 0 or step == job.train.steps:
            values = record(step)
            self.result.losses[step] = values["loss"]
            self.log(step, values)
        if step % job.checkpoint.every == 0 or step == job.train.steps:
            self.save(state, batches)
        if self.received:
            name = self.received[0]
            log.info("%s: saving step %d and exiting", name, step)
            self.save(state, batches, force=True)  # a step saved just above is not saved twice
            self.result.preempted, self.result.signal = True, name
            return True
        return False

    def save(self, state: TrainState, batches: Any, force: bool = False) -> None:
        meta = {**self.meta, self.meter.objective.weight_name: self.meter.trained}
        self.checkpoints.save(self.result.step, state, batches, meta, force=force)

    def log(self, step: int, values: dict[str, Any]) -> None:
        """Send `values` (if any) to every metric sink under `step`."""
        if values:
            for sink in self.sinks:
                sink.log(step, values)


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever `sys.stderr` is at the time of each message, not the one at creation (a test
    harness or a caller that redirects stderr after the first run would otherwise get a closed stream)."""

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


def console_logging() -> None:
    """phijax's own INFO messages (resume, preemption, data) go to stderr once per process.

    Importing orbax installs a console handler on the root logger (`logging.basicConfig`), which
    would print every message a second time ("INFO:phijax.train:..."): such handlers get a filter that
    drops phijax's records. The `phijax` logger still propagates, so other root handlers (pytest's
    capture, an application's log file) see every message. Orbax's and asyncio's reports of a failed save are
    dropped: the trainer reports that failure in one line.
    """
    logger = logging.getLogger("phijax")
    logger.setLevel(logging.INFO)
    for handler in logging.getLogger().handlers:
        if type(handler) is logging.StreamHandler and not any(isinstance(f, _NotPhijax) for f in handler.filters):
            handler.addFilter(_NotPhijax())
    if not any(getattr(h, "phijax_console", False) for h in logger.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("phijax: %(message)s"))
        handler.phijax_console = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
    for name in ("absl", "asyncio"):  # asyncio: "Task exception was never retrieved" of the failed writes
        reporter = logging.getLogger(name)
        if not any(isinstance(f, _SaveFailureFilter) for f in reporter.filters):
            reporter.addFilter(_SaveFailureFilter())


class _NotPhijax(logging.Filter):
    """Drops phijax's records from a root console handler: phijax prints them once, itself."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.name.startswith("phijax")


class _SaveFailureFilter(logging.Filter):
    """Drops orbax's tracebacks of a save that failed (the trainer raises one CheckpointError for it)."""

    MARKS = ("No space left", "raised an exception", "background save thread", "Save Finalize thread")

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        return not (record.levelno >= logging.ERROR and any(mark in text for mark in self.MARKS))


@contextmanager
def _quiet_closed_loops() -> Iterator[None]:
    """Drop the "Event loop is closed" tracebacks that tensorstore callbacks print after a failed save
    (orbax closes its event loop while writes still complete); other uncaught errors print as usual."""
    previous = sys.excepthook

    def hook(kind: type[BaseException], err: BaseException, tb: Any) -> None:
        if not (kind is RuntimeError and str(err) == "Event loop is closed"):
            previous(kind, err, tb)

    previous_unraisable = sys.unraisablehook

    def unraisable(info: Any) -> None:
        if not (isinstance(info.exc_value, RuntimeError) and str(info.exc_value) == "Event loop is closed"):
            previous_unraisable(info)

    sys.excepthook, sys.unraisablehook = hook, unraisable
    try:
        yield
    finally:
        sys.excepthook, sys.unraisablehook = previous, previous_unraisable


def _start(
    job: TrainJob, tx, layout: StateLayout, checkpoints: Checkpoints, batches, initial: Callable[[], dict[str, Any]]
) -> tuple[int, TrainState, int | None, dict[str, Any]]:
    """(step, state, resumed step, meta) from the run's newest checkpoint, else the initial parameters."""
    if checkpoints.steps():
        restored = checkpoints.restore_latest(layout, batches)
        if restored is None:
            raise CheckpointError(
                f"no checkpoint in {checkpoints.directory} can be restored (each is damaged; see the warnings "
                "above): move the directory away to start afresh, or start from one with checkpoint.init_from"
            )
        step, state, meta = restored  # the banner says "resumed from step N of DIR"
        return step, state, step, meta
    return 0, state_from_params(initial(), tx, layout), None, {}


def _say_unfinished(checkpoints: Checkpoints) -> None:
    """One line when an interrupted save is all that is there (the run starts from step 0)."""
    unfinished = checkpoints.unfinished()
    if unfinished and not checkpoints.steps():
        log.warning(
            "%s holds only unfinished save(s) (%s), no complete checkpoint: starting from step 0",
            checkpoints.directory,
            ", ".join(p.name for p in unfinished),
        )


def _remove_unfinished(checkpoints: Checkpoints) -> None:
    """Delete the temporary directories of saves a hard stop interrupted (process 0, the run dir locked):
    orbax ignores them, but a step never saved again would keep its partial copy on disk for good."""
    unfinished = checkpoints.unfinished() if jax.process_index() == 0 else []
    for path in unfinished:
        shutil.rmtree(path, ignore_errors=True)
    if unfinished:
        log.info("removed %d unfinished save(s) (%s)", len(unfinished), ", ".join(p.name for p in unfinished))


def _say_bad_records() -> None:
    """One line per source with bad records: how many distinct ones were skipped (each warned once)."""
    from phijax.data.mixture import distinct_bad_records

    for name, count in distinct_bad_records().items():
        log.info("data source `%s`: %d distinct bad record(s) skipped (data stats lists them)", name, count)


def _last_checkpoint(checkpoints: Checkpoints) -> str | None:
    steps = checkpoints.steps()
    return str(checkpoints.directory / str(steps[-1])) if steps else None


def _state_bytes(layout: StateLayout) -> int:
    return sum(math.prod(a.shape) * a.dtype.itemsize for a in jax.tree.leaves(layout.abstract))


def _batch_axes(sharding) -> tuple[str, ...]:
    axes = tuple(sharding.spec)[0]
    return () if axes is None else (axes,) if isinstance(axes, str) else tuple(axes)


def _data_line(job: TrainJob) -> str:
    """The data a run reads, for the banner: sources and their shares, or DPO's pairs files."""
    if job.train.stage == "dpo" and job.dpo is not None:
        return "preference pairs " + ", ".join(job.dpo.pairs)
    total = sum(s.weight for s in job.data.sources) or 1.0
    return ", ".join(f"{s.name} ({s.source}) {s.weight / total:.0%}" for s in job.data.sources)


def _once(make: Callable[[], Any]) -> Callable[[], Any]:
    """`make` called at most once; later calls return the first result."""
    made: list[Any] = []

    def get() -> Any:
        if not made:
            made.append(make())
        return made[0]

    return get


@contextmanager
def _run_lock(run_dir: Path) -> Iterator[None]:
    """The run directory's lock (process 0 takes it; `phijax.train.lock`). A run directory this start
    created is removed again when start-up fails before writing a file into it (bad data, say)."""
    if jax.process_index() != 0:
        yield
        return
    created = not run_dir.exists()
    try:
        with RunLock(run_dir):
            yield
    except BaseException:
        if created and all(p.is_dir() for p in run_dir.rglob("*")):  # only empty folders (checkpoints/)
            shutil.rmtree(run_dir, ignore_errors=True)
        raise


@contextmanager
def _metric_sinks(job: TrainJob, run_dir: Path) -> Iterator[list[Any]]:
    """The configured metric loggers (process 0 only), closed on exit."""
    sinks = []
    if jax.process_index() == 0:
        registry = get_registry()
        sinks = [registry.create("metric_loggers", name, run_dir) for name in job.train.metric_loggers]
    try:
        yield sinks
    finally:
        for sink in sinks:
            sink.close()


@contextmanager
def _signal_guard() -> Iterator[list[str]]:
    """While active, SIGTERM and Ctrl-C only note the signal (the loop saves and stops after the step);
    a second Ctrl-C raises KeyboardInterrupt at once."""
    received: list[str] = []

    def on_signal(number: int, _frame: Any) -> None:
        name = signal.Signals(number).name
        if name == "SIGINT" and "SIGINT" in received:
            raise KeyboardInterrupt
        received.append(name)
        print(
            f"phijax: {name}: saving at the end of this step, then exiting"
            + (" (Ctrl-C again to abort at once)" if name == "SIGINT" else ""),
            file=sys.stderr,
            flush=True,
        )

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield received
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)

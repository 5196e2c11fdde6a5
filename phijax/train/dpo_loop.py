"""The DPO training loop: `phijax train` with `train.stage: dpo`, or `phijax dpo`.

The same machinery as the next-token loop (`phijax.train.loop`): mesh, sharded state, AdamW and its
schedule, orbax checkpoints holding the pair iterator's position, metric sinks, SIGTERM handling,
resume-or-refuse. What differs is the data (preference pairs, `phijax.data.pairs`), the step
(`phijax.train.preference`) and the reference model:

- `dpo.reference: precompute`: before the first step, one pass scores every pair with the initial
  parameters; the [pairs, 2] result is kept on the host and cached in `run_dir/reference_logps.npz`
  (a resumed run reads it back; if it is missing it is recomputed from the initial parameters).
- `dpo.reference: frozen`: a copy of the initial parameters stays on the devices and scores each
  batch in the step (a second model in memory, no pass before training).

The initial parameters are `checkpoint.init_from` (the SFT model) or, without it, a fresh
initialisation from `train.seed`.
"""

from __future__ import annotations

import json
import logging
import math
import sys
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from phijax.config import Config
from phijax.errors import CheckpointError, ConfigError
from phijax.parallel import distributed
from phijax.parallel.mesh import batch_sharding, build_mesh, request_cpu_devices
from phijax.stages import STAGES
from phijax.train.checkpoint import Checkpoints
from phijax.train.loop import (
    TrainResult,
    claim_run_dir,
    console_logging,
    bookkeeping,
)
from phijax.train.optim import learning_rate_schedule, make_optimizer
from phijax.train.preference import (
    global_pair_batch,
    make_dpo_step,
    make_logps_fn,
    reference_logps,
)
from phijax.train import state as train_state
from phijax.train.state import StateLayout, TrainState, state_from_params, state_layout

log = logging.getLogger("phijax.train")
REFERENCE_FILE = "reference_logps.npz"


def train_dpo(cfg: Config) -> TrainResult:
    """Run (or resume) DPO on `dpo.pairs` until `train.steps` or SIGTERM."""
    console_logging()
    request_cpu_devices(cfg.mesh.cpu_devices)
    distributed.initialize()
    STAGES["dpo"](cfg)
    # late: keeps the CLI light
    from phijax.data.pairs import PairBatches, PreferencePairs
    from phijax.data.pipeline import check_vocabulary, tokenizer_for

    mesh = build_mesh(cfg.mesh)
    tx = make_optimizer(cfg.optim, cfg.train.steps)
    layout = state_layout(cfg.model, tx, mesh, cfg.mesh.rules)
    tokenizer = tokenizer_for(cfg.data.tokenizer)
    check_vocabulary(tokenizer, cfg)
    pairs = PreferencePairs(cfg.dpo.pairs, tokenizer, cfg.model.vocab_size)
    log.info("%d preference pairs (%s), %.2f epochs in %d steps", len(pairs),
             "single-token, shared inputs" if pairs.single_token else "whole responses",
             cfg.train.steps * cfg.train.global_batch / len(pairs), cfg.train.steps)
    _check_rows(cfg, batch_sharding(mesh, cfg.mesh.rules), pairs.single_token)
    batches = PairBatches(pairs, cfg.train.global_batch, cfg.train.seq_len, tokenizer.pad_id,
                          seed=cfg.data.seed, shuffle=cfg.dpo.shuffle,
                          process_index=jax.process_index(), process_count=jax.process_count())
    checkpoints = Checkpoints(cfg.run_dir, cfg.checkpoint)
    try:
        claim_run_dir(cfg, Path(cfg.run_dir), has_checkpoints=bool(checkpoints.steps()))
        run = _DPORun(cfg, mesh, layout, tx, batches, checkpoints)
        run.start(pairs, tokenizer.pad_id)
        if run.result.step >= cfg.train.steps:
            log.info("run already complete at step %d: raise train.steps to train further", run.result.step)
        run.train()
    finally:
        checkpoints.close()
    return run.result


class _DPORun:
    """One DPO run's state between start-up and the last step (a class only to share its parts)."""

    def __init__(self, cfg: Config, mesh, layout: StateLayout, tx, batches, checkpoints: Checkpoints):
        self.cfg, self.mesh, self.layout, self.tx = cfg, mesh, layout, tx
        self.batches, self.checkpoints = batches, checkpoints
        self.sharding = batch_sharding(mesh, cfg.mesh.rules)
        self.state: TrainState | None = None
        self.reference: np.ndarray | dict[str, Any] | None = None  # [pairs, 2] logps, or frozen params
        self.result = TrainResult(step=0)

    def start(self, pairs, pad_id: int) -> None:
        """The reference (cached, computed, or frozen) and the state (resumed or initial)."""
        cfg, resume = self.cfg, bool(self.checkpoints.steps())
        initial: dict[str, Any] | None = None
        if cfg.dpo.reference == "precompute":
            self.reference = _cached_reference(cfg, len(pairs))
            if self.reference is None:
                initial = initial_params(cfg, self.layout)
                self.reference = self._compute_reference(pairs, initial, pad_id)
        else:
            initial = initial_params(cfg, self.layout)
            self.reference = initial
        if resume:
            self.state = self._restore()
            return
        if initial is None:
            initial = initial_params(cfg, self.layout)
        if cfg.dpo.reference == "frozen":  # the step donates the policy; the reference must survive
            initial = jax.jit(lambda p: jax.tree.map(jnp.copy, p), out_shardings=self.layout.shardings["params"])(initial)
        self.state = state_from_params(initial, self.tx, self.layout)

    def _compute_reference(self, pairs, params: dict[str, Any], pad_id: int) -> np.ndarray:
        started = time.perf_counter()
        logps_fn = make_logps_fn(self.layout, self.sharding, self.cfg.dpo, self.cfg.train.loss_chunk)
        out = reference_logps(pairs, params, logps_fn, self.cfg.train.global_batch, self.cfg.train.seq_len,
                              pad_id, self.sharding)
        log.info("reference log-probs of %d pairs in %.1f s", len(pairs), time.perf_counter() - started)
        if jax.process_index() == 0:
            _write_reference(self.cfg, out)
        return out

    def _restore(self) -> TrainState:
        restored = self.checkpoints.restore_latest(self.layout, self.batches)
        if restored is None:
            raise CheckpointError(
                f"no checkpoint in {self.checkpoints.directory} can be restored; move the directory away to start afresh"
            )
        step, state, _ = restored
        self.result = TrainResult(step=step, resumed_from=step)
        log.info("resumed from step %d of %s", step, self.checkpoints.directory)
        return state

    def train(self) -> None:
        """Step to `train.steps`, logging, checkpointing and stopping on SIGTERM."""
        cfg, result = self.cfg, self.result
        step_fn = make_dpo_step(self.layout, self.tx, self.sharding, cfg.dpo, cfg.train.loss_chunk,
                                cfg.train.grad_accum)
        schedule = learning_rate_schedule(cfg.optim, cfg.train.steps)
        meta = {"seed": cfg.train.seed, "reference": cfg.dpo.reference}
        with bookkeeping(cfg, self.checkpoints, result, meta) as books:
            meter = _DPOMeter(cfg.train.steps)
            while result.step < cfg.train.steps:
                local = next(self.batches)
                meter.count(local)
                self.state, metrics = step_fn(self.state, *self._step_inputs(local))
                result.step += 1
                if books.after_step(self.state, self.batches,
                                    lambda s: meter.record(s, metrics, float(schedule(s - 1)))):
                    return

    def _step_inputs(self, local: dict[str, np.ndarray]) -> tuple[Any, ...]:
        """(batch,) with the precomputed reference of its pairs, or (batch, frozen params)."""
        if isinstance(self.reference, np.ndarray):
            local = {**local, "reference_logps": self.reference[local["pair_index"]]}
            return (global_pair_batch(local, self.sharding),)
        return global_pair_batch(local, self.sharding), self.reference


def initial_params(cfg: Config, layout: StateLayout) -> dict[str, Any]:
    """The parameters DPO starts from and measures against: `init_from`, else a fresh init (sharded)."""
    return train_state.initial_params(cfg.model, layout, cfg.train.seed, cfg.checkpoint.init_from)


def _check_rows(cfg: Config, sharding, single_token: bool) -> None:
    """The rows of a micro-batch of pairs (one row a pair, or two) must split over the batch devices."""
    axes = sharding.spec[0] if len(sharding.spec) else None
    axes = () if axes is None else (axes,) if isinstance(axes, str) else tuple(axes)
    shards = math.prod(sharding.mesh.shape[a] for a in axes)
    per_pair, accum = (1 if single_token else 2), cfg.train.grad_accum
    if cfg.train.global_batch // accum * per_pair % shards:
        need = accum * shards // math.gcd(per_pair, shards)
        raise ConfigError(
            f"train.global_batch={cfg.train.global_batch} pairs ({per_pair} row(s) each, {accum} micro-batch(es)) "
            f"do not split over the {shards} devices of the batch axes: set it to a multiple of {need}"
        )


# --------------------------------------------------------------------------- reference cache file
def _reference_key(cfg: Config, count: int) -> str:
    """What the cached reference log-probs depend on; a different key means recompute."""
    return json.dumps({
        "pairs": [str(Path(p).absolute()) for p in cfg.dpo.pairs], "count": count,
        "seq_len": cfg.train.seq_len, "average": cfg.dpo.loss_type == "ipo",
        "init_from": cfg.checkpoint.init_from, "seed": None if cfg.checkpoint.init_from else cfg.train.seed,
    }, sort_keys=True)


def _write_reference(cfg: Config, logps: np.ndarray) -> None:
    path = Path(cfg.run_dir) / REFERENCE_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, logps=logps, key=np.asarray(_reference_key(cfg, len(logps))))
    tmp.replace(path)


def _cached_reference(cfg: Config, count: int) -> np.ndarray | None:
    """The run directory's reference log-probs if they were computed for these pairs and settings."""
    path = Path(cfg.run_dir) / REFERENCE_FILE
    if not path.is_file():
        return None
    with np.load(path) as cached:
        if str(cached["key"]) != _reference_key(cfg, count):
            log.warning("%s was computed for other pairs or settings; recomputing it", path)
            return None
        log.info("reference log-probs read from %s", path)
        return np.asarray(cached["logps"])


# ---------------------------------------------------------------------------------------- metrics
class _DPOMeter:
    """Step metrics → a logged record with lr, throughput and timing since the last log."""

    def __init__(self, total_steps: int):
        self.total = total_steps
        self.last_time = time.perf_counter()
        self.steps = self.pairs = self.tokens = 0

    def count(self, local: dict[str, np.ndarray]) -> None:
        """Add one step's pairs and non-padding tokens (this process's share, scaled to all)."""
        self.steps += 1
        self.pairs += len(local["pair_index"]) * jax.process_count()
        self.tokens += int((local["segment_ids"] > 0).sum()) * jax.process_count()

    def record(self, step: int, metrics: dict[str, jax.Array], lr: float) -> dict[str, Any]:
        values = {k: float(v) for k, v in jax.device_get(metrics).items()}
        now = time.perf_counter()
        elapsed, self.last_time = now - self.last_time, now
        record = {"loss": values.pop("loss"), "lr": lr, "grad_norm": values.pop("grad_norm"), **values,
                  "tokens_per_s": self.tokens / elapsed, "pairs_per_s": self.pairs / elapsed,
                  "step_time_s": elapsed / max(self.steps, 1)}
        self.steps = self.pairs = self.tokens = 0
        print(f"step {step}/{self.total} loss {record['loss']:.4f} lr {lr:.2e} "
              f"margin {record['rewards/margins']:.4f} accuracy {record['rewards/accuracies']:.2f}",
              file=sys.stderr, flush=True)
        return record

"""Preference objectives: DPO and its variants on pairs (prompt, chosen, rejected), `train.stage: dpo`.

Phi-4 (docs/phi4-recipe.md § Post-training) runs two DPO rounds after SFT: Pivotal Token Search pairs
(single-token completions, `phijax pts`) then judge-guided whole responses. A batch holds the rows of
`phijax.data.pairs.pair_rows` (B pairs: inputs [B or 2B, seq], targets and loss_mask [2B, seq], chosen
at row 2i and rejected at 2i + 1) and, with a precomputed reference, `reference_logps` [B, 2].

The reference is the initial parameters (`checkpoint.init_from`, the SFT model):
- `dpo.reference: precompute`: before the first step one pass scores every pair; the [pairs, 2]
  result stays on the host and is cached in `run_dir/reference_logps.npz` (a resumed run reads it;
  if it is missing it is recomputed from the initial parameters).
- `dpo.reference: frozen`: a copy of the initial parameters stays on the devices and scores each
  micro-batch inside the step (a second model in memory, no pass before training).

A loss is a `PreferenceLoss`: per-pair losses of the policy's and the reference's log-probs. SimPO or
ORPO would be one more small class registered in `PREFERENCE_LOSSES` (and its name in
`DPOConfig.loss_type`); the objective, the step and the trainer stay as they are.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.experimental import multihost_utils
from jax.sharding import NamedSharding

from phijax.errors import ConfigError
from phijax.model.phi4 import Phi4
from phijax.parallel.mesh import batch_sharded_activations
from phijax.train.config import DPOConfig, TrainJob
from phijax.train.losses import completion_logps, ipo_losses, pair_metrics, sigmoid_dpo_losses
from phijax.train.objectives import Batch, global_arrays, row_sharding
from phijax.train.state import StateLayout

log = logging.getLogger("phijax.train")
REFERENCE_FILE = "reference_logps.npz"
Params = dict[str, Any]


# ------------------------------------------------------------------------------------------- losses
@dataclass(frozen=True)
class PreferenceLoss:
    """Per-pair losses of log-probs [pairs, 2] (chosen, rejected): the one thing a variant defines.

    `average_logps`: the loss is defined on length-averaged log-probs; `rewards` are the implicit
    rewards the metrics report (DPO: β·(policy - reference)).
    """

    beta: float
    label_smoothing: float = 0.0
    average_logps = False

    def losses(self, policy: jax.Array, reference: jax.Array) -> jax.Array:
        raise NotImplementedError

    def rewards(self, policy: jax.Array, reference: jax.Array) -> jax.Array:
        return self.beta * (policy - reference)


def _log_ratio_gap(policy: jax.Array, reference: jax.Array) -> jax.Array:
    """h = (policy_chosen - reference_chosen) - (policy_rejected - reference_rejected), [pairs]."""
    ratio = policy - reference
    return ratio[:, 0] - ratio[:, 1]


class SigmoidLoss(PreferenceLoss):
    """DPO (Rafailov et al.), conservative with `label_smoothing` > 0."""

    def losses(self, policy: jax.Array, reference: jax.Array) -> jax.Array:
        return sigmoid_dpo_losses(_log_ratio_gap(policy, reference), self.beta, self.label_smoothing)


class IPOLoss(PreferenceLoss):
    """IPO (Azar et al.) on length-averaged log-probs."""

    average_logps = True

    def losses(self, policy: jax.Array, reference: jax.Array) -> jax.Array:
        return ipo_losses(_log_ratio_gap(policy, reference), self.beta)


PREFERENCE_LOSSES: dict[str, type[PreferenceLoss]] = {"sigmoid": SigmoidLoss, "ipo": IPOLoss}


# ---------------------------------------------------------------------------------------- objective
class Preference:
    """Preference pairs, a reference model and a `PreferenceLoss` (by `dpo.loss_type`), weighted by pairs."""

    weight_name = "pairs"
    progress = {"rewards/margins": "margin", "rewards/accuracies": "accuracy"}

    def __init__(self, job: TrainJob):
        self.job = job
        self.dpo = job.dpo or DPOConfig()
        self.pair_loss = PREFERENCE_LOSSES[self.dpo.loss_type](self.dpo.beta, self.dpo.label_smoothing)
        self.pairs: Any = None
        self.pad_id = 0
        self.reference: np.ndarray | None = None  # [pairs, 2] precomputed log-probs

    @classmethod
    def validate(cls, job: TrainJob) -> None:
        """Pairs to train on and a valid loss."""
        dpo = job.dpo or DPOConfig()
        if not dpo.pairs:
            raise ConfigError("dpo.pairs is empty: name the pairs JSONL files, e.g. dpo.pairs=[runs/pts/pairs.jsonl]")
        if not dpo.beta > 0:
            raise ConfigError(f"dpo.beta ({dpo.beta}) must be > 0; 0.1 is usual")
        if not 0.0 <= dpo.label_smoothing < 0.5:
            raise ConfigError(f"dpo.label_smoothing ({dpo.label_smoothing}) must be in [0, 0.5)")
        if dpo.loss_type != "sigmoid" and dpo.label_smoothing:
            raise ConfigError(
                f"dpo.label_smoothing applies to the sigmoid loss only; set it to 0 for dpo.loss_type={dpo.loss_type}"
            )
        if not job.checkpoint.init_from:
            log.warning("DPO from a random initialisation: set checkpoint.init_from=RUN_DIR (the SFT model)")

    def batches(self, job: TrainJob, sharding: NamedSharding) -> Iterator[Batch]:
        """This process's share of each global batch of pairs (`phijax.data.pairs.PairBatches`)."""
        from phijax.data.pairs import PairBatches, PreferencePairs  # late: the data stack is heavy
        from phijax.data.pipeline import check_vocabulary, tokenizer_for

        tokenizer = tokenizer_for(job.data.tokenizer)
        check_vocabulary(tokenizer, job)
        self.pairs, self.pad_id = PreferencePairs(self.dpo.pairs, tokenizer, job.model.vocab_size), tokenizer.pad_id
        log.info(
            "%d preference pairs (%s), %.2f epochs in %d steps",
            len(self.pairs),
            "single-token, shared inputs" if self.pairs.single_token else "whole responses",
            job.train.steps * job.train.global_batch / len(self.pairs),
            job.train.steps,
        )
        check_rows(job, sharding, self.pairs.single_token)
        return PairBatches(
            self.pairs,
            job.train.global_batch,
            job.train.seq_len,
            tokenizer.pad_id,
            seed=job.data.seed,
            shuffle=self.dpo.shuffle,
            process_index=jax.process_index(),
            process_count=jax.process_count(),
        )

    def prepare(self, layout: StateLayout, sharding: NamedSharding, initial: Callable[[], Params]) -> Params | None:
        """Frozen: a copy of the initial parameters (the step donates the policy's). Precompute: the
        reference log-probs of every pair, cached in the run directory."""
        if self.dpo.reference == "frozen":
            return jax.jit(lambda p: jax.tree.map(jnp.copy, p), out_shardings=layout.shardings["params"])(initial())
        self.reference = cached_reference(self.job, len(self.pairs))
        if self.reference is None:
            started = time.perf_counter()
            logps_fn = make_logps_fn(layout, sharding, self.job.train.loss_chunk, self.pair_loss.average_logps)
            self.reference = reference_logps(
                self.pairs,
                initial(),
                logps_fn,
                self.job.train.global_batch,
                self.job.train.seq_len,
                self.pad_id,
                sharding,
            )
            log.info("reference log-probs of %d pairs in %.1f s", len(self.pairs), time.perf_counter() - started)
            if jax.process_index() == 0:
                write_reference(self.job, self.reference)
        return None

    def extra_shardings(self, layout: StateLayout) -> Any:
        return layout.shardings["params"] if self.dpo.reference == "frozen" else None

    def global_batch(self, local: Batch, sharding: NamedSharding) -> dict[str, jax.Array]:
        """Pair rows → global arrays, with the precomputed reference of the batch's pairs."""
        if self.reference is not None:
            local = {**local, "reference_logps": self.reference[local["pair_index"]]}
        return global_pair_batch(local, sharding)

    def examples(self, batch: Batch) -> int:
        return batch["targets"].shape[0] // 2

    def loss(
        self, model: Phi4, micro: Batch, extra: Params | None
    ) -> tuple[jax.Array, jax.Array, dict[str, jax.Array]]:
        """(summed per-pair loss, pairs, summed per-pair metrics) of a micro-batch of pairs."""
        chunk, average = self.job.train.loss_chunk, self.pair_loss.average_logps
        policy = pair_logps(model, micro, chunk, average)
        if extra is None:
            reference = micro["reference_logps"]
        else:
            reference_model = nnx.merge(nnx.graphdef(model), extra)
            reference = jax.lax.stop_gradient(pair_logps(reference_model, micro, chunk, average))
        losses = self.pair_loss.losses(policy, reference)
        metrics = pair_metrics(policy, self.pair_loss.rewards(policy, reference))
        pairs = jnp.asarray(losses.shape[0], jnp.float32)
        return jnp.sum(losses), pairs, {k: jnp.sum(v) for k, v in metrics.items()}

    def tokens(self, local: Batch) -> int:
        return int(np.size(local["input_ids"])) * jax.process_count()

    def meta(self) -> dict[str, Any]:
        return {"reference": self.dpo.reference}


def check_rows(job: TrainJob, sharding: NamedSharding, single_token: bool) -> None:
    """The rows of a micro-batch of pairs (one row a pair, or two) must split over the batch devices."""
    axes = sharding.spec[0] if len(sharding.spec) else None
    axes = () if axes is None else (axes,) if isinstance(axes, str) else tuple(axes)
    shards = math.prod(sharding.mesh.shape[a] for a in axes)
    per_pair, accum, batch = (1 if single_token else 2), job.train.grad_accum, job.train.global_batch
    if batch // accum * per_pair % shards:
        need = accum * shards // math.gcd(per_pair, shards)
        raise ConfigError(
            f"train.global_batch={batch} pairs ({per_pair} row(s) each, {accum} micro-batch(es)) "
            f"do not split over the {shards} devices of the batch axes: set it to a multiple of {need}"
        )


# ---------------------------------------------------------------------------------- log-probabilities
def pair_logps(model: Phi4, batch: Batch, chunk: int = 1024, average: bool = False) -> jax.Array:
    """log p(completion | prompt) of each pair's chosen and rejected completion: [B, 2] float32.

    With shared inputs (one row per pair: single-token completions), the hidden states of a row
    serve both of its target rows.
    """
    hidden = model.hidden_states(batch["input_ids"], batch["positions"], batch["segment_ids"])
    if hidden.shape[0] != batch["targets"].shape[0]:
        hidden = jnp.repeat(hidden, 2, axis=0)
    logps = completion_logps(hidden, model.lm_head[...], batch["targets"], batch["loss_mask"], chunk, average)
    return logps.reshape(-1, 2)


def make_logps_fn(
    layout: StateLayout, sharding: NamedSharding, loss_chunk: int = 1024, average: bool = False
) -> Callable[[Params, Batch], jax.Array]:
    """A jitted `logps(params, batch) -> [B, 2]` (no gradient), activations pinned to the batch sharding:
    the reference pass, and scoring (tools/score_pairs.py)."""

    def logps(params: Params, batch: Batch) -> jax.Array:
        batch = {k: jax.lax.with_sharding_constraint(v, row_sharding(sharding, v.ndim)) for k, v in batch.items()}
        with batch_sharded_activations(sharding):
            return pair_logps(nnx.merge(layout.graphdef, params), batch, loss_chunk, average)

    return jax.jit(logps, in_shardings=(layout.shardings["params"], None))


def global_pair_batch(local: Batch, sharding: NamedSharding) -> dict[str, jax.Array]:
    """This process's rows of a pair batch → global arrays sharded over the batch axes."""
    return global_arrays({k: v for k, v in local.items() if k != "pair_index"}, sharding)


def to_host(x: jax.Array) -> np.ndarray:
    """A global (possibly multi-host) array gathered whole on every host."""
    if jax.process_count() > 1:
        return np.asarray(multihost_utils.process_allgather(x, tiled=True))
    return np.asarray(jax.device_get(x))


def reference_logps(
    pairs: Any,
    params: Params,
    logps_fn: Callable[[Params, Batch], jax.Array],
    global_batch: int,
    seq_len: int,
    pad_id: int,
    sharding: NamedSharding,
) -> np.ndarray:
    """[num pairs, 2] log-probs of every pair's chosen and rejected completion under `params`.

    One pass in pair order, in global batches of `global_batch` pairs (the last one filled by
    repeating the last pair); every host ends with the whole array.
    """
    from phijax.data.pairs import pair_rows

    count, local = len(pairs), global_batch // jax.process_count()
    first = jax.process_index() * local
    out = np.zeros((count, 2), np.float32)
    for start in range(0, count, global_batch):
        indices = [min(start + first + j, count - 1) for j in range(local)]
        rows, _ = pair_rows([pairs[i] for i in indices], seq_len, pad_id, shared=pairs.single_token)
        logps = to_host(logps_fn(params, global_pair_batch(rows, sharding)))
        n = min(global_batch, count - start)
        out[start : start + n] = logps[:n]
    return out


# ------------------------------------------------------------------------------ reference cache file
def _reference_key(job: TrainJob, count: int) -> str:
    """What the cached reference log-probs depend on; a different key means recompute."""
    dpo = job.dpo or DPOConfig()
    return json.dumps(
        {
            "pairs": [str(Path(p).absolute()) for p in dpo.pairs],
            "count": count,
            "seq_len": job.train.seq_len,
            "average": PREFERENCE_LOSSES[dpo.loss_type].average_logps,
            "init_from": job.checkpoint.init_from,
            "seed": None if job.checkpoint.init_from else job.train.seed,
        },
        sort_keys=True,
    )


def write_reference(job: TrainJob, logps: np.ndarray) -> None:
    """Cache [pairs, 2] reference log-probs in the run directory, with the key they were computed for."""
    path = Path(job.run_dir) / REFERENCE_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, logps=logps, key=np.asarray(_reference_key(job, len(logps))))
    tmp.replace(path)


def cached_reference(job: TrainJob, count: int) -> np.ndarray | None:
    """The run directory's reference log-probs if they were computed for these pairs and settings."""
    path = Path(job.run_dir) / REFERENCE_FILE
    if not path.is_file():
        return None
    try:
        with np.load(path) as cached:
            key, logps = str(cached["key"]), np.asarray(cached["logps"])
    except Exception as err:  # a truncated or corrupt .npz: zipfile, pickle and value errors alike
        log.warning("%s is corrupt or truncated (%s); recomputing it", path, str(err)[:120] or type(err).__name__)
        return None
    if key != _reference_key(job, count) or logps.shape != (count, 2):
        log.warning("%s was computed for other pairs or settings; recomputing it", path)
        return None
    log.info("reference log-probs read from %s", path)
    return logps

"""Score checkpoints on a DPO pairs file: how strongly each prefers the chosen completions.

    python tools/score_pairs.py --config configs/tiny/dpo.yaml \
        --checkpoint runs/tiny-sft --checkpoint runs/tiny-dpo [--pairs held_out.jsonl] [KEY=VALUE ...]

For each checkpoint (a model directory, a checkpoint step or a run directory; `init` for a fresh
initialisation from `train.seed`), one pass of `phijax.train.objectives.preference.reference_logps` gives
log p(chosen | prompt) and log p(rejected | prompt) of every pair (truncated to `train.seq_len` like
training). Reported per checkpoint: mean log-probs, their mean gap, and the fraction of pairs whose
chosen completion is more likely than the rejected one — before/after numbers for a DPO run. Prints
one JSON object per checkpoint.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from typing import Any

import numpy as np


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", action="append", required=True, help="a DPO config (model, mesh, tokenizer, seq_len)")
    p.add_argument("--checkpoint", action="append", required=True, help="checkpoint to score (repeat); `init` = fresh")
    p.add_argument("--pairs", action="append", help="pairs files instead of the config's dpo.pairs")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE")
    return p.parse_args(argv)


def score(logps: np.ndarray) -> dict[str, float]:
    """Summary of [pairs, 2] (chosen, rejected) log-probs."""
    gap = logps[:, 0] - logps[:, 1]
    return {
        "pairs": len(logps),
        "logp_chosen": float(logps[:, 0].mean()),
        "logp_rejected": float(logps[:, 1].mean()),
        "gap": float(gap.mean()),
        "chosen_over_rejected": float((gap > 0).mean()),
    }


def score_checkpoints(job: Any, checkpoints: Sequence[str]) -> list[dict[str, Any]]:
    """`score` of every checkpoint on `job.dpo.pairs`."""
    from phijax.data.pairs import PreferencePairs
    from phijax.data.pipeline import tokenizer_for
    from phijax.parallel.mesh import batch_sharding, build_mesh, request_cpu_devices
    from phijax.train.objectives.preference import PREFERENCE_LOSSES, make_logps_fn, reference_logps
    from phijax.train.optim import make_optimizer
    from phijax.train.state import initial_params, state_layout

    request_cpu_devices(job.mesh.cpu_devices)
    mesh = build_mesh(job.mesh)
    layout = state_layout(job.model, make_optimizer(job.optim, job.train.steps), mesh, job.mesh.rules)
    sharding = batch_sharding(mesh, job.mesh.rules)
    tokenizer = tokenizer_for(job.data.tokenizer)
    pairs = PreferencePairs(job.dpo.pairs, tokenizer, job.model.vocab_size)
    average = PREFERENCE_LOSSES[job.dpo.loss_type].average_logps
    logps_fn = make_logps_fn(layout, sharding, job.train.loss_chunk, average)
    results = []
    for checkpoint in checkpoints:
        params = initial_params(job.model, layout, job.train.seed, None if checkpoint == "init" else checkpoint)
        logps = reference_logps(
            pairs, params, logps_fn, job.train.global_batch, job.train.seq_len, tokenizer.pad_id, sharding
        )
        results.append({"checkpoint": checkpoint, **score(logps)})
    return results


def main(argv: Sequence[str] | None = None) -> list[dict[str, Any]]:
    from phijax.train.config import load_train_job

    args = parse_args(argv)
    overrides = list(args.overrides) + ([f"dpo.pairs={json.dumps(args.pairs)}"] if args.pairs else [])
    results = score_checkpoints(load_train_job(args.config, overrides), args.checkpoint)
    for result in results:
        print(json.dumps(result))
    return results


if __name__ == "__main__":
    main()

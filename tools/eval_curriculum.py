"""Greedy accuracy of checkpoints on held-out curriculum problems, in the terms of a PTS config.

    python tools/eval_curriculum.py --config configs/tiny/pts.yaml --checkpoint runs/tiny-pretrain \
        [--checkpoint runs/tiny-dpo ...] [--n 100] [--seed 2] [--json out.json]

A thin wrapper over the `curriculum` evaluator plugin (`phijax_plugins.evaluators.curriculum`): `--n`
curriculum problems of `--seed` with the config's `curriculum.kinds` and `max_digits` (use a seed
that neither training nor `phijax pts` read: pretraining reads 0, the tiny PTS config 1). Prompts use
`prompt_format`, responses are judged by `verifier`, decoding is greedy with
`max_new_tokens`. Prints one line per checkpoint and optionally writes JSON.
"""

from __future__ import annotations

import argparse
import json
import time

from phijax.config import load_job
from phijax.inference.policy import load_policy
from phijax.plugins.registry import get_registry
from phijax.pts.config import PTSJob


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="a `phijax pts` config (e.g. configs/tiny/pts.yaml)")
    parser.add_argument("--checkpoint", action="append", required=True, help="model dir, step or run dir; repeat")
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--seed", type=int, default=2)
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()

    pts = load_job(PTSJob, [args.config])
    evaluator = get_registry().create(
        "evaluators",
        "curriculum",
        count=args.n,
        seed=args.seed,
        kinds=tuple(pts.curriculum.kinds),
        max_digits=pts.curriculum.max_digits,
        prompt_format=pts.prompt_format,
        max_new_tokens=pts.max_new_tokens,
        verifier=pts.verifier,
        verifier_options=dict(pts.verifier_options),
    )
    results = []
    for checkpoint in args.checkpoint:
        start = time.perf_counter()
        result = evaluator(load_policy(checkpoint, tokenizer=pts.policy.tokenizer), seed=0)
        accuracy = result.metrics["accuracy"]
        results.append(
            {
                "checkpoint": checkpoint,
                "accuracy": accuracy,
                "stderr": result.stderr.get("accuracy"),
                "n": args.n,
                "seed": args.seed,
                "wall_s": round(time.perf_counter() - start, 1),
            }
        )
        print(f"{checkpoint}: greedy accuracy {accuracy:.3f} on {args.n} problems (seed {args.seed})")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()

"""`phijax generate`: sample replies of a policy to prompts, from a `GenerateJob` config or flags.

    phijax generate --checkpoint runs/tiny-sft --prompt "What is 12 + 30?" --n 3
    phijax generate --config configs/tiny/generate.yaml temperature=0 "prompts=[12 + 30 =, 7 + 5 =]"

Every flag is a shorthand for one config key (`--n 3` is `num_samples=3`): the flags given become
overrides after the positional ones, and one loader (`load_job(GenerateJob, ...)`) checks both forms.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

import yaml

from phijax.cli.arguments import add_config_args, load_command_job

FLAGS: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("--checkpoint", "policy.checkpoint", {"help": "model dir, checkpoint step, or run dir (newest step)"}),
    ("--prompt", "prompts", {"action": "append", "help": "the user message (Phi-4 chat template applied); repeatable"}),
    ("--tokenizer", "policy.tokenizer", {"help": "tokenizer.json or `phi4` (default: the run's data.tokenizer)"}),
    ("--max-new-tokens", "max_new_tokens", {"type": int, "help": "longest reply, in tokens (default 256)"}),
    ("--temperature", "temperature", {"type": float, "help": "0 = greedy (default 0.7)"}),
    ("--top-k", "top_k", {"type": int, "help": "0 = off"}),
    ("--top-p", "top_p", {"type": float, "help": "1 = off"}),
    ("--seed", "seed", {"type": int, "help": "default 0"}),
    ("--n", "num_samples", {"type": int, "help": "number of replies, sampled from one prefill"}),
    (
        "--raw",
        "raw",
        {
            "action": "store_const",
            "const": True,
            "help": "no chat template: continue the prompt as plain text (pretrained models)",
        },
    ),
)
"""(flag, the config key it sets, argparse options); a flag left out leaves its key to the config."""

DESCRIPTION = (
    "Sample replies of a checkpoint to prompts. Each flag sets one config key (`phijax config keys generate`): "
    "--checkpoint is policy.checkpoint, --tokenizer policy.tokenizer, --prompt prompts, --n num_samples, "
    "the others their own name; flags win over KEY=VALUE overrides, which win over --config files."
)


def add_parsers(sub: Any) -> None:
    """Register `generate`: the config arguments plus one flag per common key."""
    p = sub.add_parser("generate", help="sample replies of a checkpoint to a chat prompt", description=DESCRIPTION)
    add_config_args(p, example="temperature=0 policy.batch_size=8")
    for flag, key, options in FLAGS:
        metavar = {} if options.get("action") == "store_const" else {"metavar": flag[2:].upper().replace("-", "_")}
        p.add_argument(flag, dest=key, default=None, **metavar, **options)
    p.set_defaults(func=_cmd_generate)


def flag_overrides(args: argparse.Namespace) -> list[str]:
    """The `key=value` overrides the given flags stand for (values written as YAML, so `yes` stays text)."""
    values = vars(args)
    overrides = []
    for _, key, _ in FLAGS:
        if values[key] is None:
            continue
        if key == "prompts":  # --prompt replaces whatever prompt or prompts the config holds
            overrides.append("prompt=null")
        dumped = yaml.safe_dump(values[key], default_flow_style=True, width=2**31, allow_unicode=True)
        overrides.append(f"{key}={dumped}")
    return overrides


def _cmd_generate(args: argparse.Namespace) -> int:
    """Load the job (bad values fail here, before jax), make the policy, print its replies."""
    job = load_command_job(args, "generate", extra=flag_overrides(args))
    from phijax.plugins.registry import get_registry

    policy = get_registry().create("backends", job.policy.backend, mesh=job.mesh, **job.policy.factory_options())
    source = getattr(policy, "source", None)
    if source is None:
        print(f"using {policy.name}", file=sys.stderr)
    else:
        print(f"loaded {source.path}" + ("" if source.step is None else f" (step {source.step})"), file=sys.stderr)
    from phijax.inference.replies import sample_replies

    print_replies(sample_replies(policy, job))
    return 0


def print_replies(replies: Sequence[Sequence[str]]) -> None:
    """One reply as is; several under `--- sample j of n ---` (and `prompt i of m` for several prompts)."""
    for i, samples in enumerate(replies):
        for j, reply in enumerate(samples):
            where = [f"prompt {i + 1} of {len(replies)}"] if len(replies) > 1 else []
            where += [f"sample {j + 1} of {len(samples)}"] if len(samples) > 1 else []
            print(f"--- {', '.join(where)} ---\n{reply}" if where else reply)

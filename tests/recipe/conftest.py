"""Shared pieces of the recipe tests: the repository root, and writing small recipes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]


def write_recipe(path: Path, root: Path, stages: list[dict[str, Any]]) -> Path:
    """A recipe YAML at `path` with `root` and `stages`."""
    path.write_text(yaml.safe_dump({"root": str(root), "stages": stages}, sort_keys=False))
    return path


def phijax(*argv: str, env: dict[str, str] | None = None, timeout: float = 170) -> subprocess.CompletedProcess:
    """`phijax ARGV...` in a subprocess from the repository root (what a user types)."""
    return subprocess.run(
        [sys.executable, "-m", "phijax.cli", *argv],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=timeout,
    )


def synth_stages() -> list[dict[str, Any]]:
    """Two fast stages (no jax): seeds → chat records (to_chat), then decontam against the tiny eval sets."""
    return [
        {
            "name": "synth",
            "command": "synth",
            "config": ["configs/tiny/recipe-synth.yaml"],
            "overrides": [
                "synth.stages=[{generator: to_chat, input: configs/tiny/recipe-seeds.jsonl, output: '${run_dir}/chat'}]"
            ],
        },
        {
            "name": "decontam",
            "command": "decontam",
            "args": [
                "--input",
                "${stages.synth}/chat/*.jsonl",
                "--text-field",
                "messages",
                "--processes",
                "1",
                "--benchmark",
                "gsm8k=configs/tiny/benchmarks/arithmetic_gsm8k.jsonl",
            ],
        },
    ]

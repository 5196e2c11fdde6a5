"""What a training writes beside its checkpoints: the config of every attempt, and the model check.

`config.yaml` is the resolved job of the current attempt; `configs/attempt-<N>.yaml` keeps every
attempt's (a resumed run may change `train.steps`, the data mixture or the learning rate), and each
checkpoint's `meta` names the attempt that wrote it, so how a checkpoint was trained is never lost.
Nothing is written until start-up has passed (config, plugins, data, resume): a failed attempt
leaves the run directory as it was.
"""

from __future__ import annotations

import re
from pathlib import Path

import jax
import yaml

from phijax.config.loader import build_section
from phijax.errors import CheckpointError
from phijax.model.config import ModelConfig
from phijax.train.config import TrainJob, job_to_dict

ATTEMPTS_DIR = "configs"
_ATTEMPT = re.compile(r"attempt-(\d+)\.yaml")


def check_same_model(job: TrainJob, run_dir: Path, has_checkpoints: bool) -> None:
    """A run with checkpoints may only be resumed with the model config it was trained with."""
    previous = run_dir / "config.yaml"
    if has_checkpoints and previous.is_file():
        old = build_section(ModelConfig, (yaml.safe_load(previous.read_text()) or {}).get("model", {}), "model")
        if old != job.model:
            raise CheckpointError(
                f"{run_dir} holds checkpoints of a different model config: resume with the same "
                "model or use a new run_dir"
            )


def next_attempt(run_dir: Path) -> int:
    """The number the attempt starting now gets (1 for a new run; an old run's config.yaml counts as 1)."""
    found = [int(m[1]) for p in (run_dir / ATTEMPTS_DIR).glob("attempt-*.yaml") if (m := _ATTEMPT.fullmatch(p.name))]
    if found:
        return max(found) + 1
    return 2 if (run_dir / "config.yaml").is_file() else 1


def write_run_config(job: TrainJob, run_dir: Path, attempt: int) -> None:
    """config.yaml (this attempt) and configs/attempt-<attempt>.yaml; process 0 only.

    A run dir written before attempts were kept has a config.yaml but no configs/: it is kept as
    attempt 1 before being replaced.
    """
    if jax.process_index() != 0:
        return
    history = run_dir / ATTEMPTS_DIR
    history.mkdir(parents=True, exist_ok=True)
    current = run_dir / "config.yaml"
    first = history / "attempt-1.yaml"
    if attempt > 1 and current.is_file() and not first.exists():
        first.write_text(current.read_text())
    text = yaml.safe_dump(job_to_dict(job), sort_keys=False)
    (history / f"attempt-{attempt}.yaml").write_text(text)
    tmp = current.with_suffix(".yaml.tmp")
    tmp.write_text(text)
    tmp.replace(current)

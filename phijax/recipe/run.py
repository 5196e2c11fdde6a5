"""`phijax recipe`: run a recipe's stages in order, each in `<root>/<name>`, skipping finished ones.

    Recipe ─► plan: per stage, argv = command + configs + wiring overrides (phijax.recipe.wiring) + its own;
              its job config is loaded (bad config: one line, exit 2, before anything runs) and hashed
          ─► per stage: done with the same hash → skip; done with another → refused unless --redo;
              otherwise `python -m phijax.cli <argv>` in a subprocess (a fresh jax; a kill resumes it)
          ─► `.recipe-done.json` after exit 0 ─► summary table, recipe.json, recipe.png

A stage's hash covers its settings as written — its config files merged with the wiring and its
overrides, defaults left out so a phijax upgrade does not invalidate finished stages (for commands
configured by flags: its arguments and the files they name) — and the hashes of the stages it reads
from, so redoing a stage redoes those after it.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from phijax.errors import ConfigError, PhijaxError
from phijax.recipe.config import Recipe, StageSpec
from phijax.recipe.wiring import Wiring, stage_label, substitute, wiring

DONE = ".recipe-done.json"
STARTED = ".recipe-stage.json"
LOG = "recipe.log"
CLI_ARGV = {"decontam": ("data", "decontam")}
"""Stage command → `phijax` argv words when they differ from the command's name."""


@dataclass(frozen=True)
class StagePlan:
    """One stage, resolved: where it runs, the exact `phijax` argv, its config hash and dependencies."""

    spec: StageSpec
    run_dir: Path
    argv: tuple[str, ...]
    config_hash: str
    depends: tuple[str, ...]


def load_recipe(files: Sequence[str | Path], overrides: Sequence[str] = ()) -> Recipe:
    """The `Recipe` from YAML files and `key=value` overrides (ConfigError on a bad one)."""
    from phijax.config.loader import load_job

    return load_job(Recipe, files, overrides)


def plan_recipe(recipe: Recipe) -> list[StagePlan]:
    """Every stage resolved in order; a stage whose config does not load raises ConfigError naming it."""
    plans: list[StagePlan] = []
    hashes: dict[str, str] = {}
    for index, stage in enumerate(recipe.stages):
        root_cls = _job_root(stage.command)
        accepted = _accepted_keys(root_cls)
        wired = wiring(recipe, index, accepted)
        argv, overrides = _command_line(recipe, index, wired)
        try:
            resolved = _resolve(stage, root_cls, argv, overrides)
        except PhijaxError as err:
            raise ConfigError(f"stage {stage_label(stage)}: {err}") from None
        material = {"command": stage.command, "config": resolved, "inputs": [hashes[d] for d in wired.depends]}
        digest = hashlib.sha256(json.dumps(material, sort_keys=True, default=str).encode()).hexdigest()
        hashes[stage.name] = digest
        plans.append(StagePlan(stage, Path(recipe.root) / stage.name, argv, digest, wired.depends))
    return plans


def _command_line(recipe: Recipe, index: int, wired: Wiring) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(`phijax` argv, its overrides) of stage `index`: command words, args, --config files, overrides."""
    stage = recipe.stages[index]
    earlier = {s.name for s in recipe.stages[:index]}
    run_dir = f"{recipe.root}/{stage.name}"
    words = [*CLI_ARGV.get(stage.command, (stage.command,))]
    words += [substitute(a, recipe.root, run_dir, earlier, stage.name) for a in (*wired.args, *stage.args)]
    words += [w for path in stage.config for w in ("--config", path)]
    own = (*wired.overrides, *stage.overrides)  # the stage's own overrides win over the wiring
    overrides = tuple(substitute(o, recipe.root, run_dir, earlier, stage.name) for o in own)
    return (*words, *overrides), overrides


FLAG_COMMANDS = ("decontam",)
"""Stage commands configured by flags rather than a config root."""


def _job_root(command: str) -> type | None:
    """The config root `command` loads (`phijax.config.jobs.JOB_ROOTS`; dpo: train's), None for flag commands."""
    from phijax.config.jobs import job_root

    return None if command in FLAG_COMMANDS else job_root("train" if command == "dpo" else command)


def _accepted_keys(root_cls: type | None) -> set[str] | None:
    from phijax.config.loader import valid_keys

    return None if root_cls is None else set(valid_keys(root_cls))


def _resolve(stage: StageSpec, root_cls: type | None, argv: tuple[str, ...], overrides: tuple[str, ...]) -> Any:
    """What the stage's hash covers: the settings as written (files merged, then overrides), after checking
    that they load. Defaults are left out, so a phijax upgrade that adds a key does not invalidate a stage."""
    if root_cls is None:  # configured by flags: the flags and the content of every file they name
        return {"argv": list(argv), "files": {f: _file_digest(f) for f in _named_files(argv)}}
    from phijax.config.loader import load_job, parse_override

    load_job(root_cls, stage.config, overrides)  # a bad config fails here, before anything runs
    written: dict[str, Any] = {}
    for path in stage.config:
        _deep_merge(written, yaml.safe_load(Path(path).read_text()) or {})
    for text in overrides:
        key, value = parse_override(text)
        for part in reversed(key.split(".")):
            value = {part: value}
        _deep_merge(written, value)
    return written


def _deep_merge(dst: dict[str, Any], src: dict[str, Any]) -> None:
    """Merge `src` into `dst` key by key, as the config loader layers files and overrides."""
    for key, value in src.items():
        if isinstance(value, dict) and isinstance(dst.get(key), dict):
            _deep_merge(dst[key], value)
        else:
            dst[key] = value


def _named_files(argv: Sequence[str]) -> list[str]:
    """Existing files an argv names, also inside `NAME=PATH[:FIELDS]` values (decontam's --benchmark)."""
    candidates = [part for a in argv for part in (a, a.partition("=")[2].partition(":")[0]) if part]
    return sorted({c for c in candidates if Path(c).is_file()})


def _file_digest(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


# --------------------------------------------------------------------------------------------- running
def stages_to_redo(plans: Sequence[StagePlan], redo: Sequence[str]) -> set[str]:
    """`redo` and every stage that reads (directly or not) from one of them; unknown names are errors."""
    names = [p.spec.name for p in plans]
    for name in redo:
        if name not in names:
            raise ConfigError(f"--redo {name}: no such stage; choose one of {', '.join(names)}")
    chosen = set(redo)
    for plan in plans:
        if chosen.intersection(plan.depends):
            chosen.add(plan.spec.name)
    return chosen


def stage_status(plan: StagePlan, redo: set[str]) -> str:
    """`done` (skip), `redo`, `resume` (an interrupted or failed stage) or `run`.

    A finished stage whose config changed is refused (ConfigError naming `--redo`); an unfinished one
    is resumed with the new config (fixing a failed stage's config is the normal way on), with a note.
    """
    name = plan.spec.name
    if name in redo:
        return "redo" if plan.run_dir.exists() else "run"
    done = _read_marker(plan.run_dir / DONE)
    if done is not None:
        if done.get("config_hash") != plan.config_hash:
            raise ConfigError(
                f"stage {name} finished with another config ({plan.run_dir / DONE}); "
                f"rerun with --redo {name} to redo it and the stages after it"
            )
        return "done"
    started = _read_marker(plan.run_dir / STARTED)
    if started is not None and started.get("config_hash") != plan.config_hash:
        _say(f"stage {name}: its config changed since it started; resuming with the new one (--redo {name}: afresh)")
    return "resume" if plan.run_dir.exists() and any(plan.run_dir.iterdir()) else "run"


def run_recipe(
    recipe: Recipe, redo: Sequence[str] = (), *, only: Sequence[str] = (), dry_run: bool = False
) -> list[dict[str, Any]]:
    """Run every stage not yet done (`only`: just these); return the summary rows of the finished stages.

    The rows are also printed as a table and written to `<root>/recipe.json` (and `recipe.png`).
    """
    from phijax.recipe.summary import stage_row, write_summary

    plans = plan_recipe(recipe)
    redo_set = stages_to_redo(plans, redo)
    chosen = _chosen(plans, only)
    statuses = {p.spec.name: stage_status(p, redo_set) for p in plans if p.spec.name in chosen}  # refusals first
    if dry_run:
        for p in plans:
            print(f"{p.spec.name:<16} {statuses.get(p.spec.name, 'not run'):<7} phijax {' '.join(p.argv)}")
        return []
    for plan in plans:
        status = statuses.get(plan.spec.name)
        if status == "done":
            _say(f"stage {plan.spec.name}: done, skipped (hash {plan.config_hash[:12]})")
        elif status is not None:
            if status == "redo":
                _move_aside(plan.run_dir)
            _run_stage(plan, status)
    rows = [stage_row(p, marker) for p in plans if (marker := _read_marker(p.run_dir / DONE)) is not None]
    write_summary(recipe, rows)
    if recipe.plot:
        from phijax.recipe.plot import recipe_figure, save_figure

        path = save_figure(recipe_figure(rows), Path(recipe.root) / "recipe.png")
        print(f"wrote {path}", file=sys.stderr)
    return rows


def _chosen(plans: Sequence[StagePlan], only: Sequence[str]) -> set[str]:
    """The stages to consider: all, or those `only` names (unknown names are errors)."""
    names = [p.spec.name for p in plans]
    for name in only:
        if name not in names:
            raise ConfigError(f"--only {name}: no such stage; choose one of {', '.join(names)}")
    return set(only) if only else set(names)


def _run_stage(plan: StagePlan, status: str) -> None:
    """Run one stage's command in a subprocess, logging to `<run_dir>/recipe.log`; mark it done on exit 0."""
    plan.run_dir.mkdir(parents=True, exist_ok=True)
    record = {
        "stage": plan.spec.name,
        "command": plan.spec.command,
        "config_hash": plan.config_hash,
        "argv": ["phijax", *plan.argv],
    }
    _write_marker(plan.run_dir / STARTED, {**record, "started": time.time()})
    _say(f"stage {plan.spec.name}: {'resuming' if status == 'resume' else 'running'} phijax {' '.join(plan.argv)}")
    start = time.monotonic()
    code, stopped = _run_logged([sys.executable, "-m", "phijax.cli", *plan.argv], plan.run_dir / LOG)
    wall_s = time.monotonic() - start
    if stopped:  # SIGTERM (preemption): the stage saved what it could; never mark it done
        raise PhijaxError(f"stopped by SIGTERM during stage {plan.spec.name}; run the recipe again to resume it")
    if code != 0:
        raise PhijaxError(
            f"stage {plan.spec.name} failed (exit {code}); see {plan.run_dir / LOG}. "
            "Fix it and run the recipe again: finished stages are skipped, this one resumes"
        )
    _check_training_finished(plan)
    _write_marker(plan.run_dir / DONE, {**record, "wall_s": round(wall_s, 2), "finished": time.time()})
    _say(f"stage {plan.spec.name}: done in {wall_s:.1f} s")


def _run_logged(command: list[str], log_path: Path) -> tuple[int, bool]:
    """Run `command`, copying its output to our stderr and to `log_path`; (exit status, got SIGTERM).

    A SIGTERM to the runner is passed on to the stage (a trainer then saves a checkpoint and exits).
    """
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    stopped = []
    with log_path.open("ab") as log:
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
        previous = signal.signal(signal.SIGTERM, lambda *_: (stopped.append(True), proc.send_signal(signal.SIGTERM)))
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                log.write(line)
                log.flush()
                sys.stderr.buffer.write(line)
                sys.stderr.flush()
        except KeyboardInterrupt:
            proc.wait()  # the stage got the same Ctrl-C; let it save and stop
            raise
        finally:
            signal.signal(signal.SIGTERM, previous)
        return proc.wait(), bool(stopped)


def _check_training_finished(plan: StagePlan) -> None:
    """A train/dpo stage that exited 0 reached its last step (a trainer stopped by SIGTERM also exits 0)."""
    if plan.spec.command not in ("train", "dpo"):
        return
    import yaml

    config = yaml.safe_load((plan.run_dir / "config.yaml").read_text()) or {}
    steps = (config.get("train") or {}).get("steps")
    saved = [int(d.name) for d in (plan.run_dir / "checkpoints").glob("*") if d.name.isdigit()]
    if steps is not None and max(saved, default=0) < steps:
        raise PhijaxError(
            f"stage {plan.spec.name} exited before its last step (newest checkpoint {max(saved, default=0)} of "
            f"{steps}: it was stopped); run the recipe again to resume it"
        )


def _move_aside(run_dir: Path) -> None:
    """Keep a redone stage's old run dir as `<name>.redo-<timestamp>` (never delete a checkpoint)."""
    target = run_dir.with_name(f"{run_dir.name}.redo-{time.strftime('%Y%m%d-%H%M%S')}")
    run_dir.rename(target)
    _say(f"stage {run_dir.name}: moved the previous run to {target} (delete it when no longer needed)")


def _read_marker(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _write_marker(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n")
    os.replace(tmp, path)


def _say(text: str) -> None:
    print(f"[recipe] {text}", file=sys.stderr, flush=True)

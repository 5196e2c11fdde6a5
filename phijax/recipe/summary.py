"""What a recipe did, per stage: steps, tokens, wall time, final loss and metrics — a table, JSON and a PNG.

Each stage's row is read back from its run dir (metrics.jsonl and config.yaml of training stages,
results.json of eval, the PTS summary, synth and decontam reports), so a re-run that skips every stage
still prints the whole table.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from phijax.recipe.config import Recipe
from phijax.recipe.wiring import PAIRS_FILE

DPO_KEYS = ("rewards/accuracies", "rewards/margins")
"""Last-logged DPO metrics shown in the table: is the policy preferring the chosen tokens, by how much."""
PTS_KEYS = ("problems", "in_band", "below_band", "above_band", "solutions", "pivotal_tokens", "pairs")


def stage_row(plan: Any, done: dict[str, Any]) -> dict[str, Any]:
    """The summary row of a finished stage (`plan`: its StagePlan; `done`: its done marker)."""
    spec, run_dir = plan.spec, Path(plan.run_dir)
    row: dict[str, Any] = {
        "stage": spec.name,
        "command": spec.command,
        "run_dir": str(run_dir),
        "steps": None,
        "tokens": None,
        "wall_s": done.get("wall_s"),
        "final_loss": None,
        "metrics": {},
    }
    if spec.command in ("train", "dpo"):
        row.update(training_summary(run_dir))
    elif spec.command == "eval":
        row["metrics"] = eval_metrics(run_dir)
    elif spec.command == "pts":
        summary = _read_json(run_dir / Path(PAIRS_FILE).with_suffix(".summary.json"))
        row["metrics"] = {k: summary[k] for k in PTS_KEYS if isinstance(summary.get(k), (int, float))}
    elif spec.command == "synth":
        row["metrics"] = synth_counts(run_dir)
    elif spec.command == "decontam":
        row["metrics"] = decontam_counts(run_dir)
    return row


def read_metrics(run_dir: str | Path) -> list[dict[str, Any]]:
    """The records of `run_dir/metrics.jsonl` (empty when there is none; a torn last line is skipped)."""
    path = Path(run_dir) / "metrics.jsonl"
    records = []
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                records.append(json.loads(line))
            except ValueError:
                continue
    return records


def training_summary(run_dir: Path) -> dict[str, Any]:
    """steps, tokens (steps × global_batch × seq_len), final loss and, for DPO, the last reward metrics."""
    records = [r for r in read_metrics(run_dir) if "step" in r]
    if not records:
        return {}
    last = records[-1]
    config = yaml.safe_load((run_dir / "config.yaml").read_text()) if (run_dir / "config.yaml").is_file() else {}
    train = (config or {}).get("train", {})
    tokens = (
        last["step"] * train["global_batch"] * train["seq_len"] if {"global_batch", "seq_len"} <= set(train) else None
    )
    extra = {k: last[k] for k in DPO_KEYS if isinstance(last.get(k), (int, float))}
    return {"steps": last["step"], "tokens": tokens, "final_loss": last.get("loss"), "metrics": extra}


def eval_metrics(run_dir: Path) -> dict[str, float]:
    """`evaluator/metric` → value from results.json (the one policy an eval stage scores)."""
    results = _read_json(run_dir / "results.json").get("results", {})
    out: dict[str, float] = {}
    for per_policy in results.values():
        for evaluator, entry in per_policy.items():
            out.update({f"{evaluator}/{m}": v for m, v in entry.get("metrics", {}).items()})
    return out


def synth_counts(run_dir: Path) -> dict[str, int]:
    """Records written and rejected, summed over the synth stages' `_synth/summary.json` under `run_dir`."""
    out = {"records": 0, "rejected": 0}
    for path in sorted(run_dir.rglob("_synth/summary.json")):
        summary = _read_json(path)
        out["records"] += summary.get("records_out", 0)
        out["rejected"] += sum(summary.get("rejected", {}).values())
    return out


def decontam_counts(run_dir: Path) -> dict[str, int]:
    """Documents read, kept and dropped as contaminated, summed over sources (report.json)."""
    sources = _read_json(run_dir / "report.json").get("sources", {})
    keys = ("documents", "kept", "contaminated", "partial")
    return {k: sum(s.get(k, 0) for s in sources.values()) for k in keys}


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


# --------------------------------------------------------------------------------------------- outputs
def format_table(rows: Sequence[dict[str, Any]]) -> str:
    """stage · command · steps · tokens · wall time · final loss · metrics, one line per stage."""
    header = ("stage", "command", "steps", "tokens", "wall s", "final loss", "metrics")
    lines = [header]
    for r in rows:
        metrics = ", ".join(f"{k} {_number(v)}" for k, v in r["metrics"].items())
        lines.append(
            (
                r["stage"],
                r["command"],
                _number(r["steps"]),
                _number(r["tokens"]),
                _number(r["wall_s"], 1),
                _number(r["final_loss"], 4),
                metrics,
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header) - 1)]
    out = [
        "  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths))) + "  " + line[-1]
        for line in lines
    ]
    out.insert(1, "-" * max(len(line) for line in out))
    return "\n".join(line.rstrip() for line in out)


def _number(value: Any, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.{digits}f}" if abs(value) < 1e5 else f"{value:,.0f}"
    return str(value)


def write_summary(recipe: Recipe, rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Print the table and write `<root>/recipe.json` (the runner draws `recipe.png` from the same rows)."""
    root = Path(recipe.root)
    report = {"root": str(root), "total_wall_s": round(sum(r["wall_s"] or 0 for r in rows), 2), "stages": list(rows)}
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".recipe.json.{os.getpid()}"  # every host of a pod may write it: whole files only
    tmp.write_text(json.dumps(report, indent=1) + "\n")
    os.replace(tmp, root / "recipe.json")
    print(format_table(rows))
    print(f"wrote {root / 'recipe.json'}", file=sys.stderr)
    return report

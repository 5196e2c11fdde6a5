"""Figures people would rather look at than read: curves of run dirs, and a recipe's whole story.

- `runs_figure(run_dirs)`: loss, learning rate and throughput against step, one line per run
  (`phijax plot RUN_DIR...`).
- `recipe_figure(rows)`: the loss of every training stage on one time axis (stages end to end, each
  stage's time from its logged `step_time_s`), and the eval metrics per stage (`<root>/recipe.png`).

Both return a `matplotlib.figure.Figure` built without pyplot (no global state, no display: the Agg
canvas), so tests can read its axes back. matplotlib is an optional extra, imported here only.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from phijax.config.loader import relative_note
from phijax.errors import PhijaxError
from phijax.recipe.summary import read_metrics

RUN_PANELS = (("loss", "loss"), ("lr", "learning rate"), ("tokens_per_s", "throughput (tokens/s)"))
"""metrics.jsonl key → panel title of `runs_figure`."""
LOSS_TITLE = "training loss, stages end to end"
EVAL_TITLE = "eval metrics per stage"


def _figure(width: float, height: float) -> Any:
    """An Agg-backed Figure; a one-line error naming the extra when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib.figure import Figure
    except ImportError:
        raise PhijaxError("plotting needs matplotlib: pip install 'phijax[plot]'") from None
    return Figure(figsize=(width, height), layout="constrained")


def runs_figure(run_dirs: Sequence[str | Path]) -> Any:
    """Loss, learning rate and tokens/s against step for each run dir (a line per run, named by its dir)."""
    runs = {str(d): read_metrics(d) for d in run_dirs}
    missing = [d for d, records in runs.items() if not records]
    if missing:
        raise PhijaxError(
            f"{missing[0]}{relative_note(missing[0])} has no metrics.jsonl records: pass a training run directory"
        )
    fig = _figure(5.0 * len(RUN_PANELS), 4.0)
    for ax, (key, title) in zip(fig.subplots(1, len(RUN_PANELS)), RUN_PANELS, strict=True):
        for name, records in runs.items():
            points = [(r["step"], r[key]) for r in records if r.get(key) is not None and "step" in r]
            if points:
                ax.plot(*zip(*points), marker="." if len(points) < 30 else None, label=Path(name).name)
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        if key == "loss" and len(runs) > 1:
            ax.legend(fontsize="small")
    return fig


def recipe_figure(rows: Sequence[dict[str, Any]]) -> Any:
    """Loss of every training stage on one time axis, and eval metrics per stage (a bar group each)."""
    fig = _figure(13.0, 4.5)
    loss_ax, eval_ax = fig.subplots(1, 2, width_ratios=(3, 2))
    _loss_panel(loss_ax, [r for r in rows if r["command"] in ("train", "dpo")])
    _eval_panel(eval_ax, [r for r in rows if r["command"] == "eval" and r["metrics"]])
    return fig


def _loss_panel(ax: Any, rows: Sequence[dict[str, Any]]) -> None:
    offset = 0.0
    for row in rows:
        times, losses = _timeline([r for r in read_metrics(row["run_dir"]) if "loss" in r and "step" in r])
        if not times:
            continue
        line = ax.plot([offset + t for t in times], losses, marker="." if len(times) < 30 else None, label=row["stage"])
        ax.axvspan(offset, offset + times[-1], color=line[0].get_color(), alpha=0.08)
        offset += times[-1]
    ax.set_title(LOSS_TITLE)
    ax.set_xlabel("training time (s)")
    ax.set_ylabel("loss")
    ax.grid(alpha=0.3)
    if rows:
        ax.legend(fontsize="small")


def _timeline(records: Sequence[dict[str, Any]]) -> tuple[list[float], list[float]]:
    """(seconds since the stage started, loss) per logged step: step_time_s × steps since the last record."""
    times, losses, elapsed, last_step = [], [], 0.0, 0
    for r in records:
        elapsed += float(r.get("step_time_s") or 1.0) * max(1, r["step"] - last_step)
        last_step = r["step"]
        times.append(elapsed)
        losses.append(r["loss"])
    return times, losses


def _eval_panel(ax: Any, rows: Sequence[dict[str, Any]]) -> None:
    metrics = sorted({m for r in rows for m, v in r["metrics"].items() if isinstance(v, (int, float))})
    width = 0.8 / max(1, len(metrics))
    for j, metric in enumerate(metrics):
        xs = [i + j * width for i, r in enumerate(rows) if metric in r["metrics"]]
        ys = [r["metrics"][metric] for r in rows if metric in r["metrics"]]
        bars = ax.bar(xs, ys, width=width, label=metric)
        ax.bar_label(bars, fmt="%.2f", fontsize="x-small")
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(rows))], [r["stage"] for r in rows], rotation=20)
    ax.set_title(EVAL_TITLE)
    ax.set_ylabel("score")
    ax.grid(alpha=0.3, axis="y")
    if metrics:
        ax.legend(fontsize="x-small")
    else:
        ax.text(0.5, 0.5, "no eval stage ran", ha="center", va="center", transform=ax.transAxes)


def save_figure(fig: Any, path: str | Path) -> Path:
    """Write `fig` as a PNG at `path` (parents created); returns the path."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.png")  # a reader never sees half an image
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(tmp, dpi=110)
        os.replace(tmp, path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise PhijaxError(f"cannot write {path}: {err.strerror}; choose a writable place for it") from None
    return path

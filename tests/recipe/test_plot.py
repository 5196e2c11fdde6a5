"""The figures: a readable PNG with the expected panels, read back from the file and the Figure."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("matplotlib")

import matplotlib.image  # noqa: E402

from phijax.cli import main  # noqa: E402
from phijax.recipe.plot import EVAL_TITLE, LOSS_TITLE, recipe_figure, runs_figure, save_figure  # noqa: E402


def fake_run(path: Path, steps: int, loss0: float) -> Path:
    """A run dir with metrics.jsonl like the trainer's (step, loss, lr, tokens_per_s, step_time_s)."""
    path.mkdir(parents=True)
    lines = [
        {"step": s, "loss": loss0 / s, "lr": 1e-3 * s / steps, "tokens_per_s": 1000.0 + s, "step_time_s": 0.5}
        for s in range(1, steps + 1)
    ]
    (path / "metrics.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def rows(tmp_path: Path) -> list[dict]:
    pre, sft = fake_run(tmp_path / "pre", 10, 6.0), fake_run(tmp_path / "sft", 4, 2.0)
    train = {"steps": 10, "tokens": 100, "wall_s": 1.0, "final_loss": 0.6}
    return [
        {"stage": "pre", "command": "train", "run_dir": str(pre), "metrics": {}, **train},
        {"stage": "eval-pre", "command": "eval", "run_dir": "", "metrics": {"addition/accuracy": 0.1, "mc/acc": 0.3}},
        {"stage": "sft", "command": "train", "run_dir": str(sft), "metrics": {}, **train},
        {"stage": "eval-sft", "command": "eval", "run_dir": "", "metrics": {"addition/accuracy": 0.4, "mc/acc": 0.5}},
    ]


def read_png(path: Path):
    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and image.shape[2] in (3, 4), "an RGB(A) image"
    assert image.std() > 0.01, "not a blank image"
    return image


def test_the_recipe_figure_has_the_loss_of_every_stage_and_the_eval_bars(tmp_path):
    fig = recipe_figure(rows(tmp_path))
    loss_ax, eval_ax = fig.axes[:2]
    assert loss_ax.get_title() == LOSS_TITLE and loss_ax.get_xlabel() == "training time (s)"
    assert [line.get_label() for line in loss_ax.get_lines()] == ["pre", "sft"]
    pre, sft = loss_ax.get_lines()
    assert min(sft.get_xdata()) > max(pre.get_xdata()), "stages end to end on one time axis"
    assert eval_ax.get_title() == EVAL_TITLE
    assert [t.get_text() for t in eval_ax.get_xticklabels()] == ["eval-pre", "eval-sft"]
    heights = sorted(round(p.get_height(), 3) for p in eval_ax.patches)
    assert heights == [0.1, 0.3, 0.4, 0.5]
    image = read_png(save_figure(fig, tmp_path / "recipe.png"))
    width, height = fig.get_size_inches() * 110
    assert image.shape[:2] == (round(height), round(width))


def test_the_runs_figure_has_loss_lr_and_throughput_panels(tmp_path):
    fig = runs_figure([fake_run(tmp_path / "a", 5, 3.0), fake_run(tmp_path / "b", 8, 4.0)])
    assert [ax.get_title() for ax in fig.axes] == ["loss", "learning rate", "throughput (tokens/s)"]
    assert all(len(ax.get_lines()) == 2 for ax in fig.axes), "one line per run in every panel"
    assert list(fig.axes[0].get_lines()[1].get_ydata()) == [4.0 / s for s in range(1, 9)]


def test_phijax_plot_writes_a_png(tmp_path, capsys):
    run = fake_run(tmp_path / "run", 6, 2.0)
    out = tmp_path / "curves.png"
    assert main(["plot", str(run), "--out", str(out)]) == 0
    read_png(out)
    assert str(out) in capsys.readouterr().out


def test_phijax_plot_of_a_dir_without_metrics_is_one_line_exit_2(tmp_path, capsys):
    assert main(["plot", str(tmp_path), "--out", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err.strip()
    assert "has no metrics.jsonl records" in err and "\n" not in err


def test_a_missing_matplotlib_names_the_extra(monkeypatch, tmp_path):
    import builtins

    from phijax.errors import PhijaxError

    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name.startswith("matplotlib"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    with pytest.raises(PhijaxError, match=r"pip install 'phijax\[plot\]'"):
        runs_figure([fake_run(tmp_path / "r", 2, 1.0)])

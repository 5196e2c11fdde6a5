"""The runner on fast real stages (synth with `to_chat`, decontam: no jax): markers, skip, refuse, redo."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from phijax.cli import main
from phijax.errors import ConfigError, PhijaxError
from phijax.recipe.run import DONE, load_recipe, plan_recipe, stages_to_redo

from .conftest import REPO, synth_stages, write_recipe


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A working dir (configs linked from the repository) where the synth → decontam recipe has run once."""
    work = tmp_path_factory.mktemp("finished")
    (work / "configs").symlink_to(REPO / "configs")
    write_recipe(work / "recipe.yaml", Path("runs"), synth_stages())
    here = os.getcwd()
    os.chdir(work)
    try:
        assert run(work / "recipe.yaml") == 0
    finally:
        os.chdir(here)
    return work


@pytest.fixture
def recipe_file(finished, tmp_path, monkeypatch):
    """A copy of `finished` (relative paths, so its stage hashes hold), as the current directory."""
    work = tmp_path / "work"
    shutil.copytree(finished, work, symlinks=True)
    monkeypatch.chdir(work)
    return work / "recipe.yaml"


def run(recipe_file, *extra: str) -> int:
    return main(["recipe", "--config", str(recipe_file), "plot=false", *extra])


def test_stages_run_in_their_run_dirs_and_are_marked_done(finished):
    root = finished / "runs"
    done = json.loads((root / "decontam" / DONE).read_text())
    assert done["argv"][:3] == ["phijax", "data", "decontam"] and done["wall_s"] >= 0
    report = json.loads((root / "recipe.json").read_text())
    rows = {r["stage"]: r for r in report["stages"]}
    assert rows["synth"]["metrics"] == {"records": 504, "rejected": 0}
    assert rows["decontam"]["metrics"]["contaminated"] == 4, "the 4 leaked benchmark items are dropped"
    assert rows["decontam"]["metrics"]["kept"] == 500


def test_a_second_run_skips_finished_stages_and_prints_the_table(recipe_file, capsys):
    log = Path("runs/synth/recipe.log")
    before = log.read_text()
    assert run(recipe_file) == 0
    out, err = capsys.readouterr()
    assert "stage synth: done, skipped" in err and "stage decontam: done, skipped" in err
    assert "decontam  decontam" in out and "contaminated 4" in out
    assert log.read_text() == before, "the command did not run again"


def test_a_changed_config_of_a_finished_stage_is_refused_unless_redone(recipe_file, capsys):
    changed = recipe_file.with_name("changed.yaml")
    changed.write_text(recipe_file.read_text().replace("arithmetic_gsm8k.jsonl", "arithmetic_gsm8k.jsonl,"))
    assert run(changed) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "stage decontam finished with another config" in err and "--redo decontam" in err
    assert run(changed, "--redo", "decontam") == 0
    assert list(Path("runs").glob("decontam.redo-*")), "the old run dir is kept aside, not deleted"
    assert run(changed) == 0, "after the redo the new config is the finished one"


def test_redo_reruns_the_stage_and_those_that_read_from_it(recipe_file, capsys):
    assert run(recipe_file, "--redo", "synth") == 0
    err = capsys.readouterr().err
    assert "stage synth: running" in err and "stage decontam: running" in err
    plans = plan_recipe(load_recipe([recipe_file]))
    assert stages_to_redo(plans, ["decontam"]) == {"decontam"}
    assert stages_to_redo(plans, ["synth"]) == {"synth", "decontam"}


def test_only_runs_the_named_stages(recipe_file, capsys):
    assert run(recipe_file, "--redo", "synth", "--only", "synth") == 0
    err = capsys.readouterr().err
    assert "stage synth: running" in err and "decontam" not in err, "decontam was neither run nor checked"
    rows = json.loads(Path("runs/recipe.json").read_text())["stages"]
    assert [r["stage"] for r in rows] == ["synth", "decontam"], "the table still shows every finished stage"
    assert not list(Path("runs").glob("decontam.redo-*")), "a stage --only leaves out is not touched"


def test_an_interrupted_stage_is_resumed(recipe_file, capsys):
    Path("runs/decontam", DONE).unlink()  # as if killed before its command exited
    assert run(recipe_file) == 0
    err = capsys.readouterr().err
    assert "stage synth: done, skipped" in err and "stage decontam: resuming" in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--redo", "nope"], "--redo nope: no such stage; choose one of synth, decontam"),
        (["--only", "nope"], "--only nope: no such stage; choose one of synth, decontam"),
        (["stages.0.command=fit"], None),
    ],
)
def test_bad_input_is_one_line_and_exit_2(recipe_file, capsys, argv, message):
    assert run(recipe_file, *argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("phijax: error:") and "\n" not in err
    if message:
        assert message in err


def test_an_unknown_command_and_a_failing_stage_config_exit_2(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(REPO)
    bad = write_recipe(tmp_path / "a.yaml", tmp_path / "runs", [{"name": "a", "command": "fit"}])
    assert main(["recipe", "--config", str(bad)]) == 2
    assert "unknown command `fit`" in capsys.readouterr().err
    bad = write_recipe(
        tmp_path / "b.yaml",
        tmp_path / "runs",
        [{"name": "p", "command": "pts", "after": "none", "config": ["configs/tiny/nope.yaml"]}],
    )
    assert main(["recipe", "--config", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert "stage p (pts): config file configs/tiny/nope.yaml not found" in err and "\n" not in err
    assert not (tmp_path / "runs").exists(), "nothing ran"


def test_a_failing_stage_stops_the_recipe_with_its_log(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(REPO)
    stages = [{"name": "d", "command": "decontam", "args": ["--input", "missing/*.jsonl"]}]
    bad = write_recipe(tmp_path / "r.yaml", tmp_path / "runs", stages)
    assert main(["recipe", "--config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "stage d failed (exit 2); see" in err and str(tmp_path / "runs" / "d" / "recipe.log") in err
    assert not (tmp_path / "runs" / "d" / DONE).exists()


def test_redo_of_an_unknown_stage_raises_config_error(recipe_file):
    with pytest.raises(ConfigError):
        stages_to_redo(plan_recipe(load_recipe([recipe_file])), ["x"])


def test_a_training_stage_that_exits_0_before_its_last_step_is_not_marked_done(tmp_path):
    from phijax.recipe.config import StageSpec
    from phijax.recipe.run import StagePlan, _check_training_finished

    run_dir = tmp_path / "pre"
    (run_dir / "checkpoints" / "2").mkdir(parents=True)
    (run_dir / "config.yaml").write_text("train: {steps: 4}\n")
    plan = StagePlan(StageSpec(name="pre", command="train"), run_dir, ("train",), "h", ())
    with pytest.raises(PhijaxError, match="newest checkpoint 2 of 4: it was stopped"):
        _check_training_finished(plan)  # e.g. a trainer that got SIGTERM saves, then exits 0
    (run_dir / "checkpoints" / "4").mkdir()
    _check_training_finished(plan)

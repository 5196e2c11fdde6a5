"""The wiring table: each stage runs in <root>/<name> and reads the stage the recipe says it reads."""

from __future__ import annotations

import dataclasses
import os

import pytest

from phijax.errors import ConfigError
from phijax.recipe.run import load_recipe, plan_recipe

from .conftest import REPO


@pytest.fixture(scope="module")
def tiny_plan():
    here = os.getcwd()
    os.chdir(REPO)  # the recipe's config paths are relative to the repository root
    try:
        return {p.spec.name: p for p in plan_recipe(load_recipe(["configs/tiny/recipe.yaml"]))}
    finally:
        os.chdir(here)


def test_the_tiny_recipe_has_every_stage_of_the_phi4_recipe(tiny_plan):
    commands = [p.spec.command for p in tiny_plan.values()]
    assert [c for c in commands if c != "eval"] == ["synth", "decontam", "train", "train", "train", "pts", "dpo"]
    assert commands.count("eval") == 4, "an evaluation after every training stage"


def test_train_stages_start_from_the_previous_model(tiny_plan):
    assert not any(w.startswith("checkpoint.init_from=") for w in tiny_plan["pretrain"].argv)
    assert "checkpoint.init_from=runs/tiny-recipe/pretrain" in tiny_plan["midtrain"].argv
    assert "checkpoint.init_from=runs/tiny-recipe/midtrain" in tiny_plan["sft"].argv
    assert "run_dir=runs/tiny-recipe/sft" in tiny_plan["sft"].argv


def test_pts_samples_the_sft_model_and_dpo_reads_its_pairs(tiny_plan):
    assert "policy.checkpoint=runs/tiny-recipe/sft" in tiny_plan["pts"].argv
    assert "output=runs/tiny-recipe/pts/pairs.jsonl" in tiny_plan["pts"].argv
    dpo = tiny_plan["dpo"]
    assert dpo.argv[0] == "dpo"
    assert "checkpoint.init_from=runs/tiny-recipe/sft" in dpo.argv
    assert "dpo.pairs=[runs/tiny-recipe/pts/pairs.jsonl]" in dpo.argv
    assert set(dpo.depends) == {"sft", "pts"}


def test_each_eval_scores_the_stage_before_it(tiny_plan):
    for model in ("pretrain", "midtrain", "sft", "dpo"):
        argv = tiny_plan[f"eval-{model}"].argv
        assert f"policy.checkpoint=runs/tiny-recipe/{model}" in argv
        assert f"output_dir=runs/tiny-recipe/eval-{model}" in argv


def test_placeholders_name_stage_directories(tiny_plan):
    decontam = tiny_plan["decontam"].argv
    assert decontam[:2] == ("data", "decontam")
    assert "runs/tiny-recipe/synth/chat/*.jsonl" in decontam
    assert tiny_plan["pretrain"].depends == ("decontam",)


def test_a_stage_hash_changes_with_its_config_and_with_what_it_reads(monkeypatch):
    monkeypatch.chdir(REPO)
    base = load_recipe(["configs/tiny/recipe.yaml"])
    hashes = {p.spec.name: p.config_hash for p in plan_recipe(base)}
    stages = list(base.stages)
    stages[2] = dataclasses.replace(stages[2], overrides=(*stages[2].overrides, "train.steps=7"))
    again = {p.spec.name: p.config_hash for p in plan_recipe(dataclasses.replace(base, stages=tuple(stages)))}
    assert again["synth"] == hashes["synth"] and again["decontam"] == hashes["decontam"]
    assert again["pretrain"] != hashes["pretrain"], "its own config changed"
    assert again["sft"] != hashes["sft"] and again["eval-dpo"] != hashes["eval-dpo"], "they read from it"


def test_the_phi4_recipe_loads_every_stage(monkeypatch):
    monkeypatch.chdir(REPO)
    plans = plan_recipe(load_recipe(["configs/phi4-14b/recipe.yaml"]))
    assert [p.spec.command for p in plans if p.spec.command != "eval"][-4:] == ["train", "train", "pts", "dpo"]


def test_a_stage_that_does_not_load_names_the_stage(tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    bad = tmp_path / "r.yaml"
    bad.write_text(
        "stages: [{name: pre, command: train, config: [configs/tiny/pretrain.yaml], overrides: [train.stepz=3]}]\n"
    )
    with pytest.raises(ConfigError, match=r"stage pre \(train\): unknown config key `train.stepz`"):
        plan_recipe(load_recipe([bad]))


def test_an_unknown_placeholder_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    bad = tmp_path / "r.yaml"
    bad.write_text(
        "stages: [{name: pre, command: train, config: [configs/tiny/pretrain.yaml], "
        "overrides: ['run_dir=${stages.later}']}, {name: later, command: train}]\n"
    )
    with pytest.raises(ConfigError, match=r"unknown placeholder \$\{stages.later\}"):
        plan_recipe(load_recipe([bad]))

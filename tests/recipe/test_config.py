"""The recipe's config root: stage names, commands and references checked before anything runs."""

from __future__ import annotations

import pytest

from phijax.config.loader import config_from_dict
from phijax.errors import ConfigError
from phijax.recipe.config import Recipe


def recipe(*stages: dict) -> Recipe:
    return config_from_dict({"root": "runs/r", "stages": list(stages)}, root=Recipe)


def test_a_recipe_lists_its_stages_in_order():
    r = recipe({"name": "a", "command": "train"}, {"name": "b", "command": "eval", "after": "a"})
    assert [s.name for s in r.stages] == ["a", "b"]
    assert r.stage("b").after == "a"


@pytest.mark.parametrize(
    ("stages", "message"),
    [
        ([], "no stages"),
        ([{"name": "a", "command": "fit"}], "unknown command `fit`"),
        ([{"name": "a", "command": "train"}, {"name": "a", "command": "train"}], "repeats the name `a`"),
        ([{"name": "a", "command": "eval", "after": "b"}, {"name": "b", "command": "train"}], "not an earlier stage"),
        ([{"name": "x/y", "command": "train"}], "plain directory name"),
    ],
)
def test_bad_recipes_are_refused_with_one_line(stages, message):
    with pytest.raises(ConfigError, match=message) as info:
        config_from_dict({"stages": stages}, root=Recipe)
    assert "\n" not in str(info.value)


def test_an_unknown_stage_name_lists_the_stages():
    r = recipe({"name": "a", "command": "train"})
    with pytest.raises(ConfigError, match="choose one of a"):
        r.stage("b")


def test_the_recipe_root_is_registered_for_config_keys():
    from phijax.config.jobs import describe_keys, job_root

    keys = {d.key: d.help for d in describe_keys(job_root("recipe"))}
    assert {"root", "stages", "plot"} <= set(keys)
    assert all(keys.values()), "every recipe key has a description"

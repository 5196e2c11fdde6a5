"""Each command's config root: every key documented, and `phijax config keys` prints the schema."""

from __future__ import annotations

import pytest

from phijax.cli import main
from phijax.config.jobs import JOB_ROOTS, describe_keys, job_root
from phijax.config.loader import valid_keys


@pytest.mark.parametrize("command", sorted(JOB_ROOTS))
def test_every_key_of_every_job_has_a_description(command):
    undocumented = [d.key for d in describe_keys(job_root(command)) if not d.help.strip()]
    assert undocumented == []


@pytest.mark.parametrize("command", sorted(JOB_ROOTS))
def test_documented_keys_are_exactly_the_keys_the_loader_accepts(command):
    root = job_root(command)
    assert [d.key for d in describe_keys(root)] == valid_keys(root)


def test_config_keys_prints_types_defaults_and_descriptions(capsys):
    assert main(["config", "keys", "train"]) == 0
    out = capsys.readouterr().out
    line = next(row for row in out.splitlines() if row.startswith("model.attention "))
    assert "xla|cudnn|splash" in line and "'xla'" in line and "splash" in line.split("'xla'")[1]
    assert any(row.startswith("mesh.rules ") for row in out.splitlines())


def test_config_keys_of_an_unknown_command_is_one_line_and_exit_2(capsys):
    assert main(["config", "keys", "trian"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "train" in err

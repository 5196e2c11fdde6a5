"""The command line's contract: one line and exit 2 for bad input, `--debug` anywhere, `--config` required."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from phijax.cli import main

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    "argv", [["train", "--debug", "--config", "nope.yaml"], ["--debug", "train", "--config", "nope.yaml"]]
)
def test_debug_is_accepted_before_or_after_the_command_and_shows_the_traceback(argv):
    with pytest.raises(Exception, match="config file nope.yaml not found"):
        main(argv)


def test_errors_are_one_line_without_a_doubled_prefix(capsys):
    assert main(["trian"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("phijax: error: ") and "phijax: error: phijax" not in err
    assert "train" in err


@pytest.mark.parametrize(
    "command, example",
    [
        (["train"], "configs/tiny/pretrain.yaml"),
        (["dpo"], "configs/tiny/dpo.yaml"),
        (["pts"], "configs/tiny/pts.yaml"),
        (["eval"], "configs/tiny/eval.yaml"),
        (["synth"], "configs/tiny/synth.yaml"),
        (["recipe"], "configs/tiny/recipe.yaml"),
        (["data", "stats"], "configs/tiny/pretrain.yaml"),
    ],
)
@pytest.mark.parametrize("overrides", [[], ["seed=1"]])
def test_a_config_command_without_config_says_so_in_one_line_with_an_example(command, example, overrides, capsys):
    assert main([*command, *overrides]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"phijax: error: phijax {' '.join(command)} needs --config FILE, e.g. --config {example}"
    assert (REPO / example).is_file()


@pytest.mark.parametrize(
    "command, root, config",
    [
        (["train"], "train", "pretrain.yaml"),
        (["dpo"], "train", "dpo.yaml"),
        (["pts"], "pts", "pts.yaml"),
        (["eval"], "eval", "eval.yaml"),
        (["synth"], "synth", "synth.yaml"),
        (["recipe"], "recipe", "recipe.yaml"),
        (["data", "stats"], "train", "pretrain.yaml"),
        (["generate"], "generate", "generate.yaml"),
    ],
)
def test_the_help_example_overrides_are_keys_of_that_command(command, root, config, capsys):
    """Each command's `--help` shows override examples; they must load against its own config root."""
    from phijax.config.jobs import job_root
    from phijax.config.loader import load_job

    with pytest.raises(SystemExit):
        main([*command, "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    example = help_text.split("dotted overrides, e.g. ")[1].split(" options:")[0].split()
    assert example, help_text
    load_job(job_root(root), [str(REPO / "configs" / "tiny" / config)], example)


def test_python_m_phijax_cli_runs_the_command_line():
    done = subprocess.run([sys.executable, "-m", "phijax.cli", "pts"], capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 2 and done.stderr.strip().endswith("e.g. --config configs/tiny/pts.yaml")


@pytest.mark.parametrize(
    "command, failing",
    [
        ("pts", ["policy.checkpoint={tmp}/nowhere", "output={tmp}/pairs.jsonl"]),
        ("synth", ["synth.stages=[]"]),
        ("eval", ["policy.checkpoint={tmp}/nowhere"]),
        ("generate", ["policy.checkpoint={tmp}/nowhere"]),
    ],
)
def test_every_command_with_a_mesh_splits_the_cpu_as_mesh_cpu_devices_says(command, failing, tmp_path, monkeypatch):
    """`mesh.cpu_devices` is a key of each of these roots; `synth` and `eval` used to ignore it (only
    `train`, `pts` and `generate` asked XLA for the devices, which must happen before jax starts). Each
    command then stops on a missing checkpoint or an empty stage list, after loading its job."""
    import phijax.parallel.mesh

    asked = []
    monkeypatch.setattr(phijax.parallel.mesh, "request_cpu_devices", asked.append)
    config = str(REPO / "configs" / "tiny" / f"{command}.yaml")
    failing = [override.format(tmp=tmp_path) for override in failing]
    assert main([command, "--config", config, "mesh.cpu_devices=3", *failing]) == 2
    assert asked == [3]

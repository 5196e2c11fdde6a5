"""The command line's contract: one line and exit 2 for bad input, `--debug` anywhere, `--config` required."""

from __future__ import annotations

import pytest

from phijax.cli import main


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


@pytest.mark.parametrize("command", ["train", "dpo"])
def test_a_command_without_config_says_so_in_one_line(command, capsys):
    assert main([command]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--config" in err

"""`phijax convert` into an output it cannot write: one line naming the path and the fix, exit 2, checked
before any weights are read (a read-only mount, as tests run as root, which ignores permission bits)."""

from __future__ import annotations

import json

import pytest

from phijax.cli import main
from phijax.model.config import preset_config
from phijax.model.hf import config_to_hf


@pytest.fixture
def read_only(tmp_path, mounts):
    """A read-only bind mount of a directory holding one empty directory, `empty/`."""
    (tmp_path / "source" / "empty").mkdir(parents=True)
    with mounts.read_only_view(tmp_path / "source", tmp_path / "ro") as view:
        yield view


def sources(tmp_path):
    """What each direction reads, enough to pass its input checks: nothing is loaded before the output check."""
    hf, phijax_dir = tmp_path / "hf", tmp_path / "model"
    hf.mkdir()
    (hf / "config.json").write_text(json.dumps(config_to_hf(preset_config("tiny"), "float32")))
    (phijax_dir / "params").mkdir(parents=True)
    return {"from-hf": hf, "to-hf": phijax_dir}


@pytest.mark.parametrize("direction", ["from-hf", "to-hf"])
@pytest.mark.parametrize(
    "output, named", [("empty", "{out}"), ("new/model", "{out} (in {ro})")], ids=["existing-empty", "new-under-ro"]
)
def test_converting_into_a_read_only_output_is_one_line_naming_it(
    tmp_path, read_only, capsys, direction, output, named
):
    out = read_only / output
    assert main(["convert", direction, str(sources(tmp_path)[direction]), str(out)]) == 2
    err = capsys.readouterr().err.strip()
    expected = named.format(out=out, ro=read_only)
    assert err == (
        f"phijax: error: cannot write {expected}: Read-only file system: pass an output directory you can "
        "write to (nothing was written)"
    )

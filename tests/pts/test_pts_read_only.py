"""`phijax pts` on a read-only output directory (issue 13): one line naming the directory and the fix, exit
status 2, before the policy is loaded; a finished run there is reported complete and kept byte for byte.

Tests run as root, which ignores file permissions, so "read-only" is a read-only tmpfs (as the training
test does in tests/train/test_operator_faults.py); where nothing can be mounted the tests skip.
"""

from __future__ import annotations

import subprocess

import pytest

from phijax.cli import main
from phijax.plugins import hookimpl

from .test_pts_driver import MODES, PROBLEMS, ROLLOUTS, SOLUTIONS, ScriptedPolicy, write_problems


class ScriptedBackend:
    """A backend plugin `scripted` making the scripted policy; counts how often a policy was loaded."""

    loads = 0

    @hookimpl
    def phijax_register_backends(self, register):
        def factory(mesh=None, **options):
            ScriptedBackend.loads += 1
            return ScriptedPolicy(PROBLEMS, MODES)

        register("scripted", factory)


@pytest.fixture
def tmpfs(tmp_path, mounts):
    """A 1 MiB tmpfs, writable until `read_only(path)` remounts it."""
    with mounts.tmpfs(tmp_path / "fs", "1m") as where:
        yield where


def read_only(where):
    subprocess.run(["mount", "-o", "remount,ro", str(where)], check=True)


@pytest.fixture
def pts(tmp_path, phijax_registry):
    """`pts(output)`: `phijax pts` with the scripted backend writing `output`; returns the exit status."""
    phijax_registry(ScriptedBackend())
    ScriptedBackend.loads = 0
    config = tmp_path / "pts.yaml"
    config.write_text(
        f"policy: {{backend: scripted}}\nproblems: {write_problems(tmp_path / 'problems.jsonl', PROBLEMS)}\n"
        f"rollouts: {ROLLOUTS}\nsolutions: {SOLUTIONS}\nmax_new_tokens: 16\n"
    )
    return lambda output: main(["pts", "--config", str(config), f"output={output}"])


def one_error_line(capsys) -> str:
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1, (out, err)
    return err.strip()


@pytest.mark.parametrize("output", ["pairs.jsonl", "new/pairs.jsonl"])
def test_a_read_only_output_dir_is_one_line_before_the_policy_is_loaded(tmpfs, pts, capsys, output):
    read_only(tmpfs)
    assert pts(tmpfs / output) == 2
    err = one_error_line(capsys)
    directory = (tmpfs / output).parent
    assert err == (
        f"phijax: error: cannot write {directory}: Read-only file system (choose a writable directory, or free space)"
    )
    assert ScriptedBackend.loads == 0 and list(tmpfs.iterdir()) == []


def test_a_finished_run_in_a_read_only_dir_is_reported_complete_and_kept(tmpfs, pts, capsys):
    """As `phijax train` on a finished read-only run: the same command says it is complete and exits 0."""
    output = tmpfs / "run" / "pairs.jsonl"
    assert pts(output) == 0 and ScriptedBackend.loads == 1
    capsys.readouterr()
    finished = {p.name: p.read_bytes() for p in output.parent.iterdir()}
    assert sorted(finished) == ["pairs.jsonl", "pairs.summary.json"]
    read_only(tmpfs)
    assert pts(output) == 0
    out, err = capsys.readouterr()
    assert f"PTS already complete: {output} holds" in out + err and "nothing to do" in out + err
    assert {p.name: p.read_bytes() for p in output.parent.iterdir()} == finished
    assert ScriptedBackend.loads == 1

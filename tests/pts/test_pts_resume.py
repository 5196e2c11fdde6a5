"""`phijax pts` under SIGTERM: progress is saved after the query in hand and the same command resumes."""

from __future__ import annotations

import json
import os
import signal

from phijax.pts.driver import run_pts

from .test_pts_driver import MODES, PROBLEMS, ScriptedPolicy, pts_config


def test_sigterm_saves_progress_and_a_rerun_resumes_to_the_straight_runs_pairs(tmp_path, phijax_registry):
    phijax_registry()
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    straight = run_pts(pts_config(tmp_path / "a"), policy=ScriptedPolicy(PROBLEMS, MODES), log=lambda line: None)

    def stop_after_first_query(line: str) -> None:
        if line.startswith("problem 1 "):
            os.kill(os.getpid(), signal.SIGTERM)

    job = pts_config(tmp_path / "b")
    stopped = run_pts(job, policy=ScriptedPolicy(PROBLEMS, MODES), log=stop_after_first_query)
    assert stopped["preempted"] and stopped["problems_done"] == 1 and not os.path.exists(job.output)
    lines: list[str] = []
    resumed = run_pts(job, policy=ScriptedPolicy(PROBLEMS, MODES), log=lines.append)
    assert any(line.startswith("resuming PTS at query 2 of") for line in lines)
    assert resumed["pairs"] == straight["pairs"] and resumed["problems"] == straight["problems"]
    assert resumed["estimates"] == straight["estimates"] and resumed["rollouts"] == straight["rollouts"]
    a = [json.loads(x) for x in open(straight["pairs_file"])]
    b = [json.loads(x) for x in open(resumed["pairs_file"])]
    assert a == b and not os.path.exists(str(job.output) + ".progress.json")


def test_a_finished_run_is_not_redone_and_one_with_other_settings_is_not_overwritten(tmp_path, phijax_registry):
    """Run again, a finished run says so without touching the policy (like `phijax train` on a finished run);
    with other settings it is refused in one line, both files kept byte for byte."""
    import pytest

    from phijax.errors import PhijaxError
    from phijax.pts.driver import summary_path

    from .test_pts_driver import ROLLOUTS

    phijax_registry()
    job = pts_config(tmp_path)
    first = run_pts(job, policy=ScriptedPolicy(PROBLEMS, MODES), log=lambda line: None)
    files = [job.output, summary_path(job.output)]
    before = [open(f, "rb").read() for f in files]
    lines: list[str] = []
    again = run_pts(job, policy=object(), log=lines.append)  # any use of this policy would raise
    assert again == json.loads(json.dumps(first)) and first["pairs"] >= 1
    assert lines == [
        f"PTS already complete: {job.output} holds {first['pairs']} pairs from these settings "
        f"(counts in {summary_path(job.output)}); nothing to do"
    ]
    with pytest.raises(PhijaxError, match=rf"other settings \(rollouts: {ROLLOUTS} -> {2 * ROLLOUTS}\); choose"):
        run_pts(pts_config(tmp_path, rollouts=2 * ROLLOUTS), policy=object(), log=lines.append)
    assert [open(f, "rb").read() for f in files] == before
    older = json.loads(before[1])
    del older["settings"]["curriculum"], older["settings"]["verifier_options"]  # a summary from before these keys
    summary_path(job.output).write_text(json.dumps(older))
    assert run_pts(job, policy=object(), log=lines.append)["pairs"] == first["pairs"]

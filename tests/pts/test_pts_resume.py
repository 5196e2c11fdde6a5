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

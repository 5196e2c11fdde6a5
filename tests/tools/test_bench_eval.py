"""tools/bench_eval.py runs end to end on the tiny width and writes its figures as JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("lm_eval")
ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_bench_eval_writes_both_backends_and_their_ratio(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    subprocess.run(
        [
            sys.executable,
            str(ROOT / "tools" / "bench_eval.py"),
            "--widths",
            "tiny",
            "--requests",
            "8",
            "--prompts",
            "2",
            "--max-gen-toks",
            "4",
            "--json",
            str(out),
        ],
        check=True,
        timeout=300,
    )
    figures = json.loads(out.read_text())["tiny"]
    assert set(figures) == {"phijax", "hf", "ratio"}
    assert figures["phijax"]["loglik_req_per_s"] > 0 and figures["hf"]["gen_tok_per_s"] > 0

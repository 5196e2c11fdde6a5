"""tools/bench_decontam.py runs end to end on a tiny workload and writes its JSON."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path


def test_bench_decontam_tiny(tmp_path, capsys):
    path = Path(__file__).resolve().parents[2] / "tools" / "bench_decontam.py"
    spec = importlib.util.spec_from_file_location("bench_decontam", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "bench.json"
    assert (
        bench.main(["--mb", "0.3", "--items", "200", "--files", "2", "--processes", "1", "2", "--json", str(out)]) == 0
    )
    result = json.loads(out.read_text())
    assert [run["processes"] for run in result["runs"]] == [1, 2]
    assert all(run["mb"] >= 0.3 and run["mb_per_s"] > 0 for run in result["runs"])
    assert result["index"]["items"] == 200 and "MB/s" in capsys.readouterr().out

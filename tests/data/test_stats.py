"""`phijax data stats`: the JSON report counts what the batches hold, per source."""

from __future__ import annotations

import json

import yaml

from phijax.cli import main


def write_config(tmp_path, sources) -> str:
    path = tmp_path / "data.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "data": {"tokenizer": "configs/tiny/tokenizer.json", "sources": sources},
                "train": {"global_batch": 4, "seq_len": 128},
            }
        )
    )
    return str(path)


def test_stats_json_reports_token_shares_and_skipped_records(tmp_path, capsys):
    web = tmp_path / "web.jsonl"
    web.write_text("".join(json.dumps({"text": f"page {i} " * 30}) + "\n" for i in range(10)) + "{bad json\n")
    config = write_config(
        tmp_path,
        [
            {"name": "math", "source": "curriculum", "weight": 3},
            {"name": "web", "source": "jsonl", "paths": [str(web)], "weight": 1},
        ],
    )
    assert main(["data", "stats", "--config", config, "--batches", "50", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report["token_share"]) == {"math", "web"}
    assert abs(report["token_share"]["math"] - 0.75) < 0.03
    assert report["tokens"] == 50 * 4 * 128  # an unlimited mixture never pads
    web_stats = report["sources"]["web"]
    assert web_stats["skipped"] >= 1 and f"{web}:11" in web_stats["skipped_examples"][0]
    assert web_stats["epochs"] > 1  # 10 short pages cannot fill a quarter of 10k tokens once


def test_stats_table_and_bad_config_exit_2(tmp_path, capsys):
    config = write_config(tmp_path, [{"name": "math", "source": "curriculum"}])
    assert main(["data", "stats", "--config", config, "--batches", "2"]) == 0
    out = capsys.readouterr().out
    assert "math" in out and "tokens/s" in out
    assert (
        main(
            [
                "data",
                "stats",
                "--config",
                config,
                "--batches",
                "2",
                "data.sources=[{name: a, source: jsonl, paths: [missing/*.jsonl]}]",
            ]
        )
        == 2
    )
    assert "no file matches 'missing/*.jsonl'" in capsys.readouterr().err

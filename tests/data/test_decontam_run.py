"""`phijax data decontam`: cleaned shards, flagged.jsonl and report.json; processes and hosts agree."""

from __future__ import annotations

import argparse
import json
import random

import pytest

from phijax.data.decontam import DecontamError
from phijax.data.decontam import cli as decontam_cli
from phijax.data.decontam import run as decontam_run

ITEM = "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May."
SHORT = "What is the boiling point of water at sea level"


@pytest.fixture
def corpus(tmp_path):
    """Three training files; document (file f, line i) is contaminated when i % 7 == 3 (13-gram) and
    carries the short item when i % 7 == 5 (7-gram)."""
    rng = random.Random(0)
    vocab = [f"v{i}" for i in range(2000)]
    planted = {}
    for f in range(3):
        lines = []
        for i in range(120):
            text = " ".join(rng.choices(vocab, k=rng.randint(10, 80)))
            if i % 7 == 3:
                text += " " + ITEM.upper()
                planted[(f, i + 1)] = "13-gram"
            elif i % 7 == 5:
                text = SHORT + "? " + text[:20]
                planted[(f, i + 1)] = "7-gram"
            lines.append(json.dumps({"text": text, "id": i}))
        (tmp_path / f"train{f}.jsonl").write_text("\n".join(lines) + "\n")
    bench = tmp_path / "gsm8k.jsonl"
    bench.write_text(
        json.dumps({"question": ITEM, "answer": "72"}) + "\n" + json.dumps({"question": SHORT, "answer": "100"}) + "\n"
    )
    return tmp_path, planted


def run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    decontam_cli.add_arguments(parser)
    return decontam_cli.run(parser.parse_args(argv))


def outputs(out):
    files = {p.relative_to(out).as_posix(): p.read_text() for p in sorted(out.rglob("*.jsonl"))}
    report = json.loads((out / "report.json").read_text())
    return files, {k: report[k] for k in ("sources", "benchmarks", "settings", "bytes")}


def test_flags_exactly_the_planted_documents_and_keeps_the_rest(corpus, capsys):
    tmp, planted = corpus
    out = tmp / "out"
    assert (
        run_cli(
            [
                "--input",
                str(tmp / "train*.jsonl"),
                "--benchmark",
                f"gsm8k={tmp / 'gsm8k.jsonl'}",
                "--out",
                str(out),
                "--processes",
                "1",
            ]
        )
        == 0
    )
    assert "gsm8k" in capsys.readouterr().out
    flagged = [json.loads(line) for line in (out / "flagged.jsonl").read_text().splitlines()]
    found = {(int(e["where"].split("train")[1][0]), int(e["where"].rsplit(":", 1)[1])): e["reason"] for e in flagged}
    assert found == planted
    assert {e["status"] for e in flagged} == {"contaminated"} and {e["benchmark"] for e in flagged} == {"gsm8k"}
    report = json.loads((out / "report.json").read_text())
    assert report["sources"]["input"]["contaminated"] == len(planted)
    assert report["sources"]["input"]["kept"] == 360 - len(planted)
    assert report["settings"]["contaminated_ratio"] == 0.5 and report["settings"]["ngram"] == 13
    kept = [json.loads(line)["id"] for line in (out / "input" / "train0.jsonl").read_text().splitlines()]
    assert kept == [i for i in range(120) if (0, i + 1) not in planted]


def test_two_processes_and_two_hosts_equal_one_process(corpus, monkeypatch):
    tmp, _ = corpus
    monkeypatch.setattr(decontam_run, "UNIT_BYTES", 2000)  # many units per file
    common = ["--input", str(tmp / "train*.jsonl"), "--benchmark", f"gsm8k={tmp / 'gsm8k.jsonl'}"]
    assert run_cli(common + ["--out", str(tmp / "one"), "--processes", "1", "--json"]) == 0
    assert run_cli(common + ["--out", str(tmp / "two"), "--processes", "2", "--json"]) == 0
    assert outputs(tmp / "one") == outputs(tmp / "two")
    for host in (1, 0):
        assert (
            run_cli(
                common
                + [
                    "--out",
                    str(tmp / "hosts"),
                    "--processes",
                    "1",
                    "--host-index",
                    str(host),
                    "--host-count",
                    "2",
                    "--json",
                ]
            )
            == 0
        )
    assert run_cli(["--out", str(tmp / "hosts"), "--merge", "--json"]) == 0
    one_files, one_report = outputs(tmp / "one")
    host_files, host_report = outputs(tmp / "hosts")
    assert one_report == host_report
    assert one_files["flagged.jsonl"] == host_files["flagged.jsonl"]
    assert {k: v for k, v in one_files.items() if k.startswith("input/")} == {
        k: v for k, v in host_files.items() if k.startswith("input/")
    }


def test_malformed_training_line_names_file_and_line(corpus):
    tmp, _ = corpus
    (tmp / "train1.jsonl").write_text('{"text": "fine"}\n{"text": oops}\n')
    with pytest.raises(DecontamError, match=r"train1.jsonl:2: not valid JSON"):
        run_cli(
            [
                "--input",
                str(tmp / "train1.jsonl"),
                "--benchmark",
                f"g={tmp / 'gsm8k.jsonl'}",
                "--out",
                str(tmp / "o"),
                "--processes",
                "1",
            ]
        )
    with pytest.raises(DecontamError, match=r"benchmark `g`: no file matches"):
        run_cli(
            [
                "--input",
                str(tmp / "train0.jsonl"),
                "--benchmark",
                f"g={tmp / 'nope.jsonl'}",
                "--out",
                str(tmp / "o"),
                "--processes",
                "1",
            ]
        )


def test_cli_reads_a_training_config_and_exits_2_on_bad_input(corpus, capsys):
    import yaml

    from phijax.cli import main

    tmp, planted = corpus
    config = tmp / "train.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "data": {
                    "sources": [{"name": "web", "source": "jsonl", "paths": [str(tmp / "train0.jsonl")]}],
                    "decontaminate": {"benchmarks": [{"name": "gsm8k", "paths": [str(tmp / "gsm8k.jsonl")]}]},
                }
            }
        )
    )
    assert main(["data", "decontam", "--config", str(config), "--out", str(tmp / "c"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["sources"]["web"]["contaminated"] == sum(1 for f, _ in planted if f == 0)
    assert (tmp / "c" / "web" / "train0.jsonl").is_file()
    bad = ["data", "decontam", "--input", str(tmp / "train0.jsonl"), "--benchmark", "g=nope.jsonl", "--out", "x"]
    assert main(bad) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "benchmark `g`: no file matches 'nope.jsonl'" in err


def test_gzip_input_is_cleaned_into_plain_jsonl(corpus):
    import gzip

    tmp, planted = corpus
    (tmp / "zipped.jsonl.gz").write_bytes(gzip.compress((tmp / "train2.jsonl").read_bytes()))
    out = tmp / "gz"
    assert (
        run_cli(
            [
                "--input",
                str(tmp / "zipped.jsonl.gz"),
                "--benchmark",
                f"g={tmp / 'gsm8k.jsonl'}",
                "--out",
                str(out),
                "--processes",
                "1",
                "--json",
            ]
        )
        == 0
    )
    kept = (out / "input" / "zipped.jsonl").read_text().splitlines()
    assert len(kept) == 120 - sum(1 for f, _ in planted if f == 2)

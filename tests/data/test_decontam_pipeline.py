"""`data.decontaminate` filters documents inside the training pipeline, resumes exactly, and its
counts reach `phijax data stats`."""

from __future__ import annotations

import json

import numpy as np
import yaml

from phijax.cli import main
from phijax.config import config_from_dict
from phijax.data.decontam.filter import decontam_counts
from phijax.data.pipeline import build_batches, tokenizer_for
from phijax.train.config import TrainJob

ITEM = "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May."


def write_inputs(tmp_path):
    web = tmp_path / "web.jsonl"
    lines = []
    for i in range(40):
        text = f"page {i} about gardens and the weather in spring " * 3
        if i % 4 == 1:
            text += "Xylophone " + ITEM  # the marker word only occurs in contaminated documents
        lines.append(json.dumps({"text": text}))
    web.write_text("\n".join(lines) + "\n")
    bench = tmp_path / "gsm8k.jsonl"
    bench.write_text(json.dumps({"question": ITEM, "answer": "72"}) + "\n")
    return web, bench


def config(tmp_path) -> dict:
    web, bench = write_inputs(tmp_path)
    return {
        "train": {"global_batch": 2, "seq_len": 64},
        "data": {
            "tokenizer": "configs/tiny/tokenizer.json",
            "sources": [
                {"name": "web", "source": "jsonl", "paths": [str(web)]},
                {"name": "math", "source": "curriculum"},
            ],
            "decontaminate": {"benchmarks": [{"name": "gsm8k", "paths": [str(bench)]}]},
        },
    }


def test_contaminated_documents_never_reach_a_batch_and_resume_is_exact(tmp_path):
    cfg = config_from_dict(config(tmp_path), root=TrainJob)
    tokenizer = tokenizer_for(cfg.data.tokenizer)
    batches = build_batches(cfg, tokenizer=tokenizer)
    seen = [next(batches) for _ in range(30)]
    state = batches.get_state()
    expected = [next(batches) for _ in range(10)]
    counts = decontam_counts(batches)
    assert counts[1]["checked"] > 0 and counts[1]["contaminated"] == 0  # every source is checked
    resumed = build_batches(cfg, tokenizer=tokenizer)
    resumed.set_state(json.loads(json.dumps(state)))  # the state is plain JSON
    for want, got in zip(expected, [next(resumed) for _ in range(10)]):
        assert all(np.array_equal(want[k], got[k]) for k in want)
    assert decontam_counts(resumed) == counts
    text = "".join(tokenizer.decode(row.tolist()) for batch in seen + expected for row in batch["input_ids"])
    assert "page 2 " in text and "Xylophone" not in text
    assert counts[0]["contaminated"] > 0 and counts[0]["checked"] == counts[0]["clean"] + counts[0]["contaminated"]


def test_data_stats_reports_decontamination_counts(tmp_path, capsys):
    path = tmp_path / "data.yaml"
    path.write_text(yaml.safe_dump(config(tmp_path)))
    assert main(["data", "stats", "--config", str(path), "--batches", "20", "--json"]) == 0
    web = json.loads(capsys.readouterr().out)["sources"]["web"]
    assert web["decontaminated"]["contaminated"] >= 1
    assert web["decontaminated"]["examples"][0] == "contaminated: gsm8k:" + str(tmp_path / "gsm8k.jsonl") + ":1"

"""Relative paths resolve against the working directory for every key, and a path that is not found is
named with where it was looked for: `(relative to <cwd>)` for a relative one, nothing for an absolute one."""

from __future__ import annotations

import pytest

from phijax.config.loader import load_job, relative_note
from phijax.data.records import expand_paths, read_jsonl
from phijax.data.tokenizer import load_tokenizer
from phijax.errors import PhijaxError
from phijax.model.checkpoint import read_model_config, resolve_checkpoint
from phijax.model.hf import read_hf_config
from phijax.train.config import TrainJob

MISSING = "missing/thing.jsonl"
LOOK_UPS = {
    "config file (--config)": lambda path: load_job(TrainJob, [path]),
    "JSONL file (benchmarks, problems)": lambda path: list(read_jsonl(path)),
    "data path or glob (data.sources, dpo.pairs)": lambda path: expand_paths([path], "jsonl"),
    "model (checkpoint.init_from, --checkpoint, convert)": lambda path: resolve_checkpoint(
        path, what="checkpoint.init_from"
    ),
    "model config beside params": read_model_config,
    "HF checkpoint (convert from-hf)": read_hf_config,
    "tokenizer (data.tokenizer)": load_tokenizer,
}


@pytest.mark.parametrize("look_up", LOOK_UPS)
def test_a_relative_path_not_found_says_it_is_relative_to_the_working_directory(tmp_path, monkeypatch, look_up):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(PhijaxError) as raised:
        LOOK_UPS[look_up](MISSING)
    message = str(raised.value)
    assert MISSING in message and f" (relative to {tmp_path})" in message and "\n" not in message


@pytest.mark.parametrize("look_up", LOOK_UPS)
def test_an_absolute_path_not_found_is_named_as_given(tmp_path, look_up):
    with pytest.raises(PhijaxError) as raised:
        LOOK_UPS[look_up](str(tmp_path / MISSING))
    message = str(raised.value)
    assert str(tmp_path / MISSING) in message and "relative to" not in message


def test_a_relative_config_path_is_kept_as_written_not_resolved_against_its_yaml_file(tmp_path, monkeypatch):
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "job.yaml").write_text("run_dir: runs/a\ncheckpoint: {init_from: runs/base}\n")
    monkeypatch.chdir(tmp_path)
    job = load_job(TrainJob, ["configs/job.yaml"], ["data.tokenizer=tok/tokenizer.json"])
    assert (job.run_dir, job.checkpoint.init_from, job.data.tokenizer) == (
        "runs/a",
        "runs/base",
        "tok/tokenizer.json",
    )


@pytest.mark.parametrize("path, note", [("a/b", " (relative to {cwd})"), ("/a/b", ""), ("~/a", "")])
def test_relative_note(tmp_path, monkeypatch, path, note):
    monkeypatch.chdir(tmp_path)
    assert relative_note(path) == note.format(cwd=tmp_path)

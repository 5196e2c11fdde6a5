"""`phijax convert to-hf` of a run directory: newest intact step, tokenizer files, world-readable output."""

from __future__ import annotations

import json
import logging
import stat
from pathlib import Path

import jax
import numpy as np
import pytest
import yaml
from flax import nnx

from phijax.cli import main
from phijax.data import load_tokenizer
from phijax.data.hf_tokenizer import hf_tokenizer_json, recover_merges
from phijax.model.checkpoint import save_model_dir
from phijax.model.config import preset_config
from phijax.model.phi4 import Phi4

TINY_TOKENIZER = Path(__file__).resolve().parents[2] / "configs" / "tiny" / "tokenizer.json"


def _fake_run(tmp_path: Path, steps: tuple[int, ...]) -> Path:
    """A run directory holding model params at `steps` and the config naming its tokenizer."""
    cfg = preset_config("tiny")
    run = tmp_path / "run"
    for step in steps:
        params = nnx.to_pure_dict(nnx.state(Phi4(cfg, rngs=nnx.Rngs(step)), nnx.Param))
        save_model_dir(jax.tree.map(np.asarray, params), cfg, run / "checkpoints" / str(step))
    config = {"model": {"preset": "tiny"}, "data": {"tokenizer": str(TINY_TOKENIZER)}}
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    return run


def _truncate_params(step_dir: Path) -> None:
    for file in sorted(p for p in (step_dir / "params").rglob("*") if p.is_file() and p.stat().st_size > 64):
        file.write_bytes(file.read_bytes()[: file.stat().st_size // 3])


def test_run_dir_exports_newest_intact_step_with_a_tokenizer_transformers_loads(tmp_path, caplog):
    transformers = pytest.importorskip("transformers")
    run = _fake_run(tmp_path, (1, 2))
    _truncate_params(run / "checkpoints" / "2")
    with caplog.at_level(logging.WARNING):
        assert main(["convert", "to-hf", str(run), str(tmp_path / "hf")]) == 0
    assert any("step 2" in r.getMessage() and "using step 1" in r.getMessage() for r in caplog.records)

    out = tmp_path / "hf"
    for name in (
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
        "generation_config.json",
    ):
        assert stat.S_IMODE((out / name).stat().st_mode) & 0o444 == 0o444, name
    ours = load_tokenizer(TINY_TOKENIZER)
    theirs = transformers.AutoTokenizer.from_pretrained(out)
    text = "Exercise. 12 + 30 = ?"
    assert theirs.encode(text, add_special_tokens=False) == ours.encode(text)
    messages = [{"role": "user", "content": "What is 2 + 3?"}]
    expected, _ = ours.format_chat(messages, add_generation_prompt=True)
    assert (
        theirs.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=False) == expected
    )

    model = transformers.AutoModelForCausalLM.from_pretrained(out)
    step1 = _fake_run(tmp_path / "again", (1,))  # the same seed: the weights step 1 holds
    assert main(["convert", "to-hf", str(step1 / "checkpoints" / "1"), str(tmp_path / "hf1")]) == 0
    reference = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "hf1")
    for (name, a), (_, b) in zip(model.state_dict().items(), reference.state_dict().items(), strict=True):
        assert (a == b).all(), name
    generated = transformers.pipeline("text-generation", model=out)("12 + 30", max_new_tokens=4, do_sample=False)
    assert generated[0]["generated_text"].startswith("12 + 30")
    # generation stops at the end of a turn (the model's eos) and at the end of a text (pretrained models)
    stops = json.loads((out / "generation_config.json").read_text())["eos_token_id"]
    assert stops == sorted({preset_config("tiny").eos_token_id, ours.special_tokens["<|endoftext|>"]})


def test_a_damaged_step_named_explicitly_is_one_line_saying_corrupt_or_truncated(tmp_path, capsys):
    run = _fake_run(tmp_path, (1,))
    _truncate_params(run / "checkpoints" / "1")
    assert main(["convert", "to-hf", str(run / "checkpoints" / "1"), str(tmp_path / "hf")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "corrupt or truncated" in err and "checkpoints/1/params" in err


def test_recovered_merges_rebuild_tiny_bpe_ranks():
    """BPE with recovered merges reproduces a hand-made vocabulary: 'ab' (rank 4) then 'abc' (rank 5)."""
    ranks = {b"a": 0, b"b": 1, b"c": 2, b"d": 3, b"ab": 4, b"abc": 5, b"cd": 6, b"abcd": 7}
    assert recover_merges(ranks) == [(b"a", b"b"), (b"ab", b"c"), (b"c", b"d"), (b"abc", b"d")]


@pytest.mark.slow
def test_phi4_tokenizer_json_matches_tiktoken_encoding():
    from tokenizers import Tokenizer

    phi4 = load_tokenizer("phi4")
    hf = Tokenizer.from_str(hf_tokenizer_json(phi4))
    texts = [
        "Hello world! It's 2024's   best.\n\n\tdef f(x):\n    return x**2  # ünïcödé 日本語 12345678",
        "  leading spaces, trailing\n\n\n",
        "x" * 300 + " 3.14159 $$ \\frac{a}{b}",
    ]
    for text in texts:
        assert hf.encode(text, add_special_tokens=False).ids == phi4.encode(text)
    assert hf.token_to_id("<|dummy_85|>") == 100349 and hf.token_to_id("<|im_end|>") == 100265

"""Shared pieces of the evaluation tests: a tiny random HF Phi-3 with its tokenizer, built offline, and
lm-eval task folders over local JSONL files (one per request type)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

TINY_TOKENIZER = Path(__file__).resolve().parents[2] / "configs" / "tiny" / "tokenizer.json"
STOP_TOKENS = ("<|endoftext|>", "<|im_end|>")  # ids 0 and 1; the only tokens HF treats as special here

MC_DOCS = [
    {"question": "Which is a colour?", "choices": ["red", "seven", "dog", "run"], "answer": 0},
    {"question": "Two plus two is", "choices": ["three", "four", "five"], "answer": 1},
    {"question": "The sky is", "choices": ["blue ", "green", "loud"], "answer": 0},
    {"question": "Cats say ", "choices": ["meow", "moo"], "answer": 0},
    {"question": "A day has how many hours?", "choices": ["12", "24", "48", "60"], "answer": 1},
]
GEN_DOCS = [
    {"question": "What is the capital of France?", "answer": "Paris"},
    {"question": "Spell the word cat.", "answer": "c a t"},
    {"question": "Count: one, two,", "answer": "three"},
    {"question": "Hello", "answer": "world"},
]
ROLLING_DOCS = [
    {"text": "The quick brown fox jumps over the lazy dog. " * 12},
    {"text": "A short line."},
    {"text": "Numbers: " + ", ".join(str(i) for i in range(60))},
]


def write_tokenizer(directory: Path) -> Path:
    """The tiny BPE with only the stop tokens special (so HF's `skip_special_tokens` decode matches phijax's)."""
    spec = json.loads(TINY_TOKENIZER.read_text())
    for token in spec["added_tokens"]:
        token["special"] = token["content"] in STOP_TOKENS
    path = directory / "tokenizer.json"
    path.write_text(json.dumps(spec))
    return path


def make_hf_model(directory: Path, *, max_len: int = 64, seed: int = 0) -> Path:
    """A random `Phi3ForCausalLM` and its tokenizer saved in `directory` (explicit pad/bos/eos ids)."""
    import torch
    from transformers import Phi3Config, Phi3ForCausalLM, PreTrainedTokenizerFast

    directory.mkdir(parents=True, exist_ok=True)
    tokenizer_file = write_tokenizer(directory)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_file=str(tokenizer_file), bos_token="<|endoftext|>", eos_token="<|im_end|>", pad_token="<|endoftext|>"
    )
    torch.manual_seed(seed)
    config = Phi3Config(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=max_len,
        original_max_position_embeddings=max_len,
        rope_theta=10000.0,
        tie_word_embeddings=False,
        bos_token_id=0,
        eos_token_id=1,
        pad_token_id=0,
    )
    model = Phi3ForCausalLM(config).eval()
    with torch.no_grad():  # larger than the default init so greedy choices are not near-ties
        for p in model.parameters():
            p.mul_(4.0) if p.dim() > 1 else None
    model.generation_config.eos_token_id = [0, 1]
    model.generation_config.pad_token_id = 0
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def write_tasks(directory: Path, data_dir: Path) -> Path:
    """Three lm-eval tasks over local JSONL files: multiple choice, generation, rolling log-likelihood."""
    directory.mkdir(parents=True, exist_ok=True)
    data_dir.mkdir(parents=True, exist_ok=True)
    for name, docs in (("mc", MC_DOCS), ("gen", GEN_DOCS), ("rolling", ROLLING_DOCS)):
        (data_dir / f"{name}.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    common = "dataset_path: json\ntest_split: train\n"
    (directory / "tiny_mc.yaml").write_text(
        f"task: tiny_mc\n{common}dataset_kwargs:\n  data_files: {data_dir / 'mc.jsonl'}\n"
        'output_type: multiple_choice\ndoc_to_text: "Question: {{question}}\\nAnswer:"\n'
        'doc_to_choice: "{{choices}}"\ndoc_to_target: answer\n'
        "metric_list:\n  - metric: acc\n  - metric: acc_norm\n"
    )
    (directory / "tiny_gen.yaml").write_text(
        f"task: tiny_gen\n{common}dataset_kwargs:\n  data_files: {data_dir / 'gen.jsonl'}\n"
        'output_type: generate_until\ndoc_to_text: "Q: {{question}}\\nA:"\ndoc_to_target: " {{answer}}"\n'
        'generation_kwargs:\n  until: ["\\n", "Q:"]\n  max_gen_toks: 12\n  do_sample: false\n'
        "metric_list:\n  - metric: exact_match\n"
    )
    (directory / "tiny_rolling.yaml").write_text(
        f"task: tiny_rolling\n{common}dataset_kwargs:\n  data_files: {data_dir / 'rolling.jsonl'}\n"
        'output_type: loglikelihood_rolling\ndoc_to_text: ""\ndoc_to_target: "{{text}}"\n'
        "metric_list:\n  - metric: word_perplexity\n  - metric: byte_perplexity\n  - metric: bits_per_byte\n"
    )
    return directory


@pytest.fixture(scope="session")
def hf_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_hf_model(tmp_path_factory.mktemp("hf") / "tiny-phi3")


@pytest.fixture(scope="session")
def task_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("lm_eval_tasks")
    return write_tasks(root / "tasks", root / "data")


REPO = Path(__file__).resolve().parents[2]
TRAIN_STEPS, EVAL_EVERY = 3, 2  # eval at step 2 only: not every step, not only the last


def phijax_cli(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    """`python -m phijax.cli ARGS` in a fresh process (its own CPU devices), output captured."""
    command = [sys.executable, "-m", "phijax.cli", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=REPO)


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny pretraining run of TRAIN_STEPS steps, the multiple-choice evaluator run every EVAL_EVERY."""
    run_dir = tmp_path_factory.mktemp("trained") / "run"
    bench = REPO / "configs" / "tiny" / "benchmarks" / "arithmetic_mc.jsonl"
    settings = {
        "run_dir": run_dir,
        "train.steps": TRAIN_STEPS,
        "train.seq_len": 64,
        "train.log_every": 1,
        "checkpoint.every": TRAIN_STEPS,
        "optim.warmup_steps": 1,
        "train.eval.every": EVAL_EVERY,
        "train.eval.evaluators": f"[{{name: multiple_choice, file: {bench}, shots: 0, limit: 4}}]",
    }
    done = phijax_cli("train", "--config", "configs/tiny/pretrain.yaml", *(f"{k}={v}" for k, v in settings.items()))
    assert done.returncode == 0, done.stderr[-3000:]
    return run_dir


@pytest.fixture(scope="session")
def trained_hf(trained_run: Path) -> Path:
    """`phijax convert to-hf` of the trained run: weights, config (max_seq_len 1024) and tokenizer."""
    out = trained_run.parent / "hf"
    done = phijax_cli("convert", "to-hf", str(trained_run), str(out))
    assert done.returncode == 0, done.stderr[-3000:]
    return out

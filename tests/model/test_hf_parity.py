"""The model against HF transformers' Phi3ForCausalLM (CPU torch), and HF checkpoint round trips."""

import json

import jax.numpy as jnp
import numpy as np
import pytest
import torch
from safetensors import safe_open
from transformers import Phi3Config, Phi3ForCausalLM

from phijax.cli import main
from phijax.errors import CheckpointError
from phijax.model import hf, load_hf, save_hf

# (hidden, heads, kv_heads, head_dim, layers, rope_theta, intermediate, vocab)
CONFIGS = [
    (64, 4, 4, 16, 1, 10_000.0, 96, 101),  # multi-head (no grouping)
    (64, 8, 2, 16, 3, 250_000.0, 160, 97),  # GQA 4:1, phi-4's midtraining base, head_dim*heads != hidden
    (96, 6, 1, 16, 2, 5_000.0, 224, 130),  # multi-query
    (128, 8, 4, 32, 4, 10_000.0, 448, 64),  # GQA 2:1, deeper
]


def make_hf_model(hidden, heads, kv, head_dim, layers, theta, inter, vocab, seed=0):
    torch.manual_seed(seed)
    config = Phi3Config(
        vocab_size=vocab,
        hidden_size=hidden,
        intermediate_size=inter,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv,
        head_dim=head_dim,
        rope_theta=theta,
        max_position_embeddings=256,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
    )
    model = Phi3ForCausalLM(config).eval()
    with torch.no_grad():  # larger than HF's init so attention patterns are far from uniform
        for p in model.parameters():
            p.normal_(0.0, 0.15)
        for name, p in model.named_parameters():
            if "norm" in name:
                p.uniform_(0.5, 1.5)
    return model


def hf_logits(model, ids):
    with torch.no_grad():
        return model(torch.tensor(ids)).logits.numpy()


@pytest.mark.parametrize("shape", CONFIGS, ids=lambda c: f"h{c[1]}kv{c[2]}L{c[4]}")
def test_logits_match_transformers(tmp_path, shape):
    reference = make_hf_model(*shape)
    reference.save_pretrained(tmp_path)
    ids = np.random.RandomState(1).randint(0, shape[-1], (2, 37))
    expected = hf_logits(reference, ids)
    got = np.asarray(load_hf(tmp_path)(jnp.asarray(ids)))
    assert got.dtype == np.float32 and got.shape == expected.shape
    assert np.abs(got - expected).max() / np.abs(expected).max() < 2e-4


def test_round_trip_is_exact_tensor_by_tensor_and_reloads_in_transformers(tmp_path):
    reference = make_hf_model(*CONFIGS[1])
    reference.save_pretrained(tmp_path / "src")
    save_hf(load_hf(tmp_path / "src"), tmp_path / "out")
    with (
        safe_open(str(tmp_path / "src" / "model.safetensors"), "numpy") as a,
        safe_open(str(tmp_path / "out" / "model.safetensors"), "numpy") as b,
    ):
        assert set(a.keys()) == set(b.keys())
        for name in a.keys():
            np.testing.assert_array_equal(a.get_tensor(name), b.get_tensor(name), err_msg=name)
    reloaded = Phi3ForCausalLM.from_pretrained(tmp_path / "out").eval()
    ids = np.random.RandomState(2).randint(0, 97, (1, 21))
    np.testing.assert_array_equal(hf_logits(reloaded, ids), hf_logits(reference, ids))


def test_multi_shard_checkpoints_are_read_and_written(tmp_path, monkeypatch):
    reference = make_hf_model(*CONFIGS[3])
    reference.save_pretrained(tmp_path / "src", max_shard_size="200KB")
    assert len(list((tmp_path / "src").glob("*.safetensors"))) > 1
    monkeypatch.setattr(hf, "SHARD_BYTES", 300_000)
    save_hf(load_hf(tmp_path / "src"), tmp_path / "out")
    shards = sorted((tmp_path / "out").glob("*.safetensors"))
    assert len(shards) > 1
    index = json.loads((tmp_path / "out" / "model.safetensors.index.json").read_text())
    assert set(index["weight_map"].values()) == {s.name for s in shards}
    reloaded = Phi3ForCausalLM.from_pretrained(tmp_path / "out").eval()
    ids = np.random.RandomState(3).randint(0, 64, (2, 9))
    np.testing.assert_array_equal(hf_logits(reloaded, ids), hf_logits(reference, ids))


def test_cli_convert_from_hf_and_back(tmp_path, capsys):
    reference = make_hf_model(*CONFIGS[0])
    reference.save_pretrained(tmp_path / "src")
    assert main(["convert", "from-hf", str(tmp_path / "src"), str(tmp_path / "ckpt")]) == 0
    assert (tmp_path / "ckpt" / "model.yaml").is_file()
    assert main(["convert", "to-hf", str(tmp_path / "ckpt"), str(tmp_path / "back")]) == 0
    ids = np.random.RandomState(4).randint(0, 101, (1, 13))
    back = Phi3ForCausalLM.from_pretrained(tmp_path / "back").eval()
    np.testing.assert_array_equal(hf_logits(back, ids), hf_logits(reference, ids))
    # A second conversion into the same directory is refused and leaves it intact.
    before = sorted(p.name for p in (tmp_path / "ckpt").iterdir())
    assert main(["convert", "from-hf", str(tmp_path / "src"), str(tmp_path / "ckpt")]) == 2
    assert "not empty" in capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == before


def test_unsupported_hf_configs_are_refused_with_the_reason(tmp_path):
    reference = make_hf_model(*CONFIGS[0])
    reference.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    for key, value, words in [
        ("model_type", "llama", "model_type"),
        ("tie_word_embeddings", True, "ties word embeddings"),
        ("sliding_window", 2047, "sliding_window"),
    ]:
        (tmp_path / "config.json").write_text(json.dumps({**config, key: value}))
        with pytest.raises(CheckpointError, match=words):
            load_hf(tmp_path)


def test_tensor_shape_mismatch_names_the_tensor(tmp_path):
    reference = make_hf_model(*CONFIGS[0])
    reference.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, "intermediate_size": 100}))
    with pytest.raises(CheckpointError, match=r"(gate_up|down)_proj.weight has shape"):
        load_hf(tmp_path)

"""The phi4-14b SFT and DPO configs carry the paper's stated numbers (docs/phi4-recipe.md § Post-training)."""

from pathlib import Path

import pytest

from phijax.model.config import preset_values
from phijax.train.config import load_train_job

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "phi4-14b"


def test_sft_config_is_8b_tokens_at_1e_6_on_chat_data():
    cfg = load_train_job([CONFIGS / "sft.yaml"])
    assert (cfg.train.stage, cfg.optim.peak_lr, cfg.data.tokenizer, cfg.data.packing) == ("sft", 1e-6, "phi4", "pad")
    tokens = cfg.train.steps * cfg.train.global_batch * cfg.train.seq_len
    assert abs(tokens - 8e9) < cfg.train.global_batch * cfg.train.seq_len
    assert all(s.options.get("text_field") == "messages" for s in cfg.data.sources)


@pytest.mark.parametrize("name, pairs", [("dpo.yaml", 250_297), ("dpo-round2.yaml", 841_842)])
def test_dpo_configs_take_one_epoch_of_each_rounds_pairs(name, pairs):
    cfg = load_train_job([CONFIGS / name])
    assert (cfg.train.stage, cfg.dpo.loss_type) == ("dpo", "sigmoid")
    assert (cfg.train.steps - 1) * cfg.train.global_batch < pairs <= cfg.train.steps * cfg.train.global_batch
    assert cfg.model.rope_theta == 250_000.0
    assert {k: getattr(cfg.model, k) for k in preset_values("phi4-14b") if k != "rope_theta"} == {
        k: v for k, v in preset_values("phi4-14b").items() if k != "rope_theta"
    }

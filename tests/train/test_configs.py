"""The shipped configs: every YAML under configs/ loads and passes its stage's checks, and the
phi4-14b configs carry the paper's numbers (docs/phi4-recipe.md § Architecture, § Pretraining, § Midtraining)."""

from pathlib import Path

import pytest
import yaml

from phijax.errors import ConfigError
from phijax.model.config import preset_values
from phijax.train.config import TrainJob, job_to_dict, load_train_job
from phijax.train.objectives import objective_class
from phijax.train.optim import learning_rate_schedule

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
YAMLS = sorted(CONFIGS.rglob("*.yaml"))
PHI4_PRETRAIN = CONFIGS / "phi4-14b" / "pretrain.yaml"
PHI4_MIDTRAIN = CONFIGS / "phi4-14b" / "midtrain.yaml"


def load(path, *overrides):
    return load_train_job([path], list(overrides))


@pytest.mark.parametrize("path", YAMLS, ids=lambda p: str(p.relative_to(CONFIGS)))
def test_every_config_loads_and_training_configs_pass_their_stage_checks(path):
    if "train" not in (yaml.safe_load(path.read_text()) or {}):
        return  # not a training job (a PTS config has its own root)
    cfg = load(path)
    if cfg.train.stage == "midtrain" and not cfg.checkpoint.init_from:
        cfg = load(path, "checkpoint.init_from=runs/pretrain")
    cfg.validate()
    assert cfg.train.seq_len <= cfg.model.max_seq_len
    assert cfg.train.global_batch % cfg.train.grad_accum == 0


def test_shipped_configs_include_both_stages_for_phi4_and_tiny():
    names = {str(p.relative_to(CONFIGS)) for p in YAMLS}
    assert {"phi4-14b/pretrain.yaml", "phi4-14b/midtrain.yaml", "tiny/pretrain.yaml", "tiny/midtrain.yaml"} <= names


@pytest.mark.parametrize("path", [PHI4_PRETRAIN, PHI4_MIDTRAIN], ids=["pretrain", "midtrain"])
def test_phi4_model_section_is_the_phi4_14b_preset(path):
    model = load(path).model
    rope = {"pretrain.yaml": 10_000.0, "midtrain.yaml": 250_000.0}[path.name]
    expected = {**preset_values("phi4-14b"), "rope_theta": rope}
    assert {key: getattr(model, key) for key in expected} == expected
    assert (model.param_dtype, model.compute_dtype) == ("float32", "bfloat16")


def test_phi4_pretraining_schedule_matches_the_paper():
    cfg = load(PHI4_PRETRAIN)
    assert (cfg.optim.peak_lr, cfg.optim.weight_decay) == (3e-4, 0.1)
    assert (cfg.train.global_batch, cfg.train.seq_len) == (5760, 4096)
    tokens = cfg.train.steps * cfg.train.global_batch * cfg.train.seq_len
    assert abs(tokens - 10e12) < cfg.train.global_batch * cfg.train.seq_len  # ~10T tokens
    weights = {s.name: s.weight for s in cfg.data.sources}
    assert weights == {"web": 0.15, "web_rewrites": 0.15, "synthetic": 0.40, "code": 0.20, "acquisitions": 0.10}


def test_phi4_schedule_warms_up_linearly_then_decays_linearly():
    cfg = load(PHI4_PRETRAIN)
    lr = learning_rate_schedule(cfg.optim, cfg.train.steps)
    warmup, steps = cfg.optim.warmup_steps, cfg.train.steps
    assert float(lr(0)) == 0.0
    assert float(lr(warmup // 2)) == pytest.approx(1.5e-4, rel=1e-4)
    assert float(lr(warmup)) == pytest.approx(3e-4, rel=1e-5)
    assert float(lr((warmup + steps) // 2)) == pytest.approx(1.5e-4, rel=1e-3)
    assert float(lr(steps)) == pytest.approx(0.0, abs=1e-9)


def test_phi4_midtraining_is_long_context_at_a_tenth_of_the_lr():
    pre, mid = load(PHI4_PRETRAIN), load(PHI4_MIDTRAIN, "checkpoint.init_from=runs/phi4-14b-pretrain")
    assert mid.optim.peak_lr == pytest.approx(pre.optim.peak_lr / 10)
    assert (mid.train.seq_len, mid.model.max_seq_len, mid.model.rope_theta) == (16384, 16384, 250_000.0)
    tokens = mid.train.steps * mid.train.global_batch * mid.train.seq_len
    assert abs(tokens - 250e9) < mid.train.global_batch * mid.train.seq_len  # ~250B tokens
    assert {s.name: s.weight for s in mid.data.sources} == {"long_context": 0.3, "recall": 0.7}


def test_phi4_midtraining_refuses_to_start_without_init_from():
    cfg = load(PHI4_MIDTRAIN)
    assert cfg.checkpoint.init_from is None
    with pytest.raises(ConfigError, match="checkpoint.init_from"):
        objective_class("midtrain").validate(cfg)


def test_tiny_midtraining_continues_tiny_pretraining():
    pre, mid = load(CONFIGS / "tiny" / "pretrain.yaml"), load(CONFIGS / "tiny" / "midtrain.yaml")
    assert mid.checkpoint.init_from == pre.run_dir
    assert mid.model.rope_theta == 250_000.0 and mid.train.seq_len > pre.train.seq_len
    assert mid.optim.peak_lr == pytest.approx(pre.optim.peak_lr / 10)
    assert {k: v for k, v in vars(mid.model).items() if k != "rope_theta"} == {
        k: v for k, v in vars(pre.model).items() if k != "rope_theta"
    }


def test_every_key_of_the_training_job_has_a_one_line_description():
    from phijax.config.jobs import describe_keys

    docs = {d.key: d.help for d in describe_keys(TrainJob)}
    ours = [k for k in docs if "." not in k or k.split(".")[0] in ("optim", "train", "checkpoint", "dpo")]
    assert {"run_dir", "dpo", "train.stage", "optim.peak_lr", "checkpoint.init_from", "dpo.reference"} <= set(ours)
    for key in ours:
        assert docs[key] and "\n" not in docs[key], key


def test_a_next_token_job_holds_no_dpo_or_pts_section():
    job = load(CONFIGS / "tiny" / "pretrain.yaml")
    assert job.dpo is None and list(job_to_dict(job)) == [
        "run_dir",
        "model",
        "mesh",
        "data",
        "optim",
        "train",
        "checkpoint",
    ]
    dpo = load(CONFIGS / "tiny" / "dpo.yaml")
    assert job_to_dict(dpo)["dpo"]["pairs"] == ["runs/tiny-pts/pairs.jsonl"]
    with pytest.raises(ConfigError, match="unknown config key `pts`"):
        load(CONFIGS / "tiny" / "pretrain.yaml", "pts.rollouts=4")


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["dpo.beta=0.2"], "dpo: section is read only with train.stage=dpo"),
        (["train.grad_accum=3"], "multiple of train.grad_accum"),
        (["train.seq_len=99999"], "exceeds model.max_seq_len"),
        (["optim.warmup_steps=1000"], "exceeds train.steps"),
    ],
)
def test_a_training_job_is_validated_in_one_place(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load(CONFIGS / "tiny" / "pretrain.yaml", *overrides).validate()

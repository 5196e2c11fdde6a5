"""Config loading: YAML layering, dotted overrides, and one-line errors that name the fix."""

import subprocess
import sys

import pytest
import yaml

from phijax.cli import main
from phijax.config import ConfigError, parse_override, valid_keys
from phijax.train.config import TrainJob, load_train_job


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_later_files_and_overrides_win_key_by_key(tmp_path):
    a = write(tmp_path, "a.yaml", "train: {steps: 5, log_every: 2}\nmodel: {preset: tiny}\n")
    b = write(tmp_path, "b.yaml", "train: {steps: 7}\n")
    cfg = load_train_job([a, b], ["train.global_batch=16", "optim.peak_lr=3e-4", "mesh.fsdp=4"])
    assert (cfg.train.steps, cfg.train.log_every, cfg.train.global_batch) == (7, 2, 16)
    assert cfg.optim.peak_lr == 3e-4 and cfg.mesh.fsdp == 4
    assert cfg.model.hidden_size == 128  # from the tiny preset


def test_preset_values_can_be_overridden_next_to_the_preset(tmp_path):
    cfg = load_train_job([], ["model.preset=tiny", "model.num_layers=3", "model.rope_theta=250000"])
    assert (cfg.model.num_layers, cfg.model.hidden_size, cfg.model.rope_theta) == (3, 128, 250000.0)


def test_list_override_parses_yaml_into_source_specs():
    cfg = load_train_job([], ["data.sources=[{name: web, source: jsonl, weight: 0.3, paths: [a.jsonl]}]"])
    (src,) = cfg.data.sources
    assert (src.name, src.source, src.weight, src.epochs) == ("web", "jsonl", 0.3, None)
    assert src.options == {"paths": ["a.jsonl"]}


def test_unknown_key_names_file_and_closest_key(tmp_path):
    path = write(tmp_path, "c.yaml", "train:\n  stpes: 3\n")
    with pytest.raises(ConfigError) as err:
        load_train_job([path])
    message = str(err.value)
    assert "train.stpes" in message and str(path) in message and "did you mean `train.steps`?" in message


def test_unknown_section_suggests_the_section():
    with pytest.raises(ConfigError, match=r"`trian` \(from command line\); did you mean `train`\?"):
        load_train_job([], ["trian.steps=3"])


def test_wrong_type_names_key_origin_and_expected_type(tmp_path):
    path = write(tmp_path, "d.yaml", "train: {steps: many}\n")
    with pytest.raises(ConfigError, match=rf"`train.steps` \(from {path}\) must be an int, got 'many'"):
        load_train_job([path])
    with pytest.raises(ConfigError, match="must be an int, got True"):
        load_train_job([], ["train.steps=true"])
    with pytest.raises(ConfigError, match="one of 'xla', 'cudnn'"):
        load_train_job([], ["model.attention=flash"])
    with pytest.raises(ConfigError, match=r"`data.sources\[0\].weight` .* must be a float"):
        load_train_job([], ["data.sources=[{name: a, source: jsonl, weight: heavy}]"])


def test_missing_required_value_names_the_key():
    with pytest.raises(ConfigError, match=r"data.sources\[0\].source is required"):
        load_train_job([], ["data.sources=[{name: a}]"])


@pytest.mark.parametrize("text", ["train.steps", "=3", "train..steps=3", "train.steps 3"])
def test_bad_override_syntax(text):
    with pytest.raises(ConfigError, match="key.sub=value"):
        parse_override(text)


def test_bad_yaml_names_the_file_and_line(tmp_path):
    path = write(tmp_path, "e.yaml", "train:\n  steps: [1, 2\n")
    with pytest.raises(ConfigError, match=rf"{path}:\d+ is not valid YAML"):
        load_train_job([path])


def test_missing_config_file():
    with pytest.raises(ConfigError, match="nope.yaml not found"):
        load_train_job(["nope.yaml"])


def test_resolved_config_round_trips(tmp_path):
    cfg = load_train_job([], ["model.preset=tiny", "data.sources=[{name: a, source: jsonl, paths: [x]}]"])
    from phijax.config import write_config

    again = load_train_job([write_config(cfg, tmp_path)])
    assert again == cfg
    assert yaml.safe_load((tmp_path / "config.yaml").read_text())["data"]["sources"][0]["paths"] == ["x"]


def test_valid_keys_cover_nested_sections():
    keys = valid_keys(TrainJob)
    assert {"train.steps", "model.hidden_size", "mesh.rules", "checkpoint.every"} <= set(keys)


def test_cli_reports_config_errors_in_one_line_with_exit_2(tmp_path):
    path = write(tmp_path, "f.yaml", "train: {stpes: 3}\n")
    proc = subprocess.run(
        [sys.executable, "-m", "phijax.cli", "train", "--config", str(path)], capture_output=True, text=True
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("phijax: error: unknown config key `train.stpes`")


def test_debug_flag_shows_the_traceback(tmp_path):
    path = write(tmp_path, "g.yaml", "train: {stpes: 3}\n")
    with pytest.raises(ConfigError):
        main(["--debug", "train", "--config", str(path)])


def test_unknown_cli_argument_is_one_line(capsys):
    assert main(["train", "--confg", "x.yaml"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unrecognized arguments" in err

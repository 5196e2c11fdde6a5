"""`phijax generate` as a config command: a `GenerateJob` from --config files, overrides and flag shorthands,
bad values refused at load time, `phijax config keys generate`, and the text-level backend path."""

from pathlib import Path

import pytest
from flax import nnx

from phijax.cli import build_parser, main
from phijax.cli.generate import flag_overrides
from phijax.config import load_job
from phijax.errors import PhijaxError
from phijax.inference.config import GenerateJob
from phijax.inference.replies import sample_replies
from phijax.model.checkpoint import save_model_dir
from phijax.synth.testing import FakePolicy

from .conftest import TOKENIZER

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, model):
    """A run directory shaped like training's: config.yaml naming the tokenizer, one checkpoint step."""
    run = tmp_path_factory.mktemp("run")
    save_model_dir(nnx.to_pure_dict(nnx.state(model, nnx.Param)), model.cfg, run / "checkpoints" / "7")
    (run / "config.yaml").write_text(f"model:\n  preset: tiny\ndata:\n  tokenizer: {TOKENIZER}\n")
    return run


def write_config(path: Path, checkpoint: str) -> Path:
    path.write_text(
        f"policy: {{backend: local, checkpoint: '{checkpoint}'}}\n"
        'prompt: "Exercise. What is 12 + 30?\\n\\nSolution."\n'
        "raw: true\nmax_new_tokens: 5\ntemperature: 0\n"
    )
    return path


def test_a_config_file_an_override_and_the_equivalent_flags_give_the_same_replies(run_dir, tmp_path, capsys):
    config = str(write_config(tmp_path / "generate.yaml", str(run_dir)))
    assert main(["generate", "--config", config]) == 0
    greedy = capsys.readouterr()
    assert greedy.out.strip() and "(step 7)" in greedy.err and "---" not in greedy.out

    flags = ["--checkpoint", str(run_dir), "--raw", "--temperature", "0", "--max-new-tokens", "5"]
    assert main(["generate", *flags, "--prompt", "Exercise. What is 12 + 30?\n\nSolution."]) == 0
    assert capsys.readouterr().out == greedy.out, "flags are shorthands for the same keys"

    assert main(["generate", "--config", config, "num_samples=2"]) == 0
    out = capsys.readouterr().out
    assert out.count("--- sample") == 2 and "--- sample 2 of 2 ---" in out
    assert out.split("--- sample 2 of 2 ---\n")[1] == greedy.out, "temperature 0: each sample is the greedy reply"


def test_flags_win_over_the_config_and_several_prompts_are_answered_in_order(run_dir, tmp_path, capsys):
    config = str(write_config(tmp_path / "generate.yaml", str(tmp_path / "not-this-one")))
    argv = [
        "generate",
        "--config",
        config,
        "--checkpoint",
        str(run_dir),
        "--prompt",
        "12 + 30 =",
        "--prompt",
        "7 + 5 =",
    ]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "--- prompt 1 of 2 ---" in out and out.index("--- prompt 1 of 2 ---") < out.index("--- prompt 2 of 2 ---")


def test_a_flag_value_stays_text_whatever_yaml_would_make_of_it():
    args = build_parser().parse_args(["generate", "--checkpoint", "1", "--prompt", "yes: [no]", "--seed", "3"])
    job = load_job(GenerateJob, [], flag_overrides(args))
    assert job.policy.checkpoint == "1" and job.all_prompts == ("yes: [no]",) and job.seed == 3


@pytest.mark.parametrize(
    "argv, key",
    [
        (["temperature=-0.5"], "temperature"),
        (["--top-p", "1.5"], "top_p"),
        (["top_p=0"], "top_p"),
        (["max_new_tokens=0"], "max_new_tokens"),
        (["--n", "0"], "num_samples"),
        (["top_k=-1"], "top_k"),
        (["policy.checkpoint=null"], "policy.checkpoint"),
        (["prompt=null"], "--prompt"),
    ],
)
def test_a_bad_value_is_refused_at_load_time_in_one_line_naming_the_key(tmp_path, capsys, argv, key):
    # the checkpoint does not exist: had the value reached the model load, the error would say so instead
    config = str(write_config(tmp_path / "generate.yaml", str(tmp_path / "missing")))
    assert main(["generate", "--config", config, *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("phijax: error: ") and key in err and "not found" not in err


def test_config_keys_generate_lists_every_key_with_a_description(capsys):
    assert main(["config", "keys", "generate"]) == 0
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[1:]}
    for key in ("policy.checkpoint", "policy.tokenizer", "mesh.fsdp", "seed", "prompt", "prompts", "raw", "stop"):
        assert key in rows
    for key in ("max_new_tokens", "temperature", "top_k", "top_p", "num_samples"):
        assert key in rows and rows[key].split(maxsplit=3)[3].strip(), key


def test_the_tiny_generate_config_loads():
    job = load_job(GenerateJob, [REPO / "configs" / "tiny" / "generate.yaml"])
    assert job.policy.checkpoint == "runs/tiny-pretrain" and job.raw and job.all_prompts[0].endswith("Solution.")


def test_a_text_level_backend_answers_through_generate_and_refuses_top_k():
    policy = FakePolicy(lambda prompt, j, seed: f"{prompt}/{j}/{seed}")
    job = load_job(GenerateJob, [], ["policy.backend=fake", "prompts=[a, b]", "num_samples=2", "seed=4"])
    assert sample_replies(policy, job) == [["a/0/4", "a/1/4"], ["b/0/4", "b/1/4"]]
    with pytest.raises(PhijaxError, match="top_k"):
        sample_replies(policy, load_job(GenerateJob, [], ["policy.backend=fake", "prompt=a", "top_k=5"]))

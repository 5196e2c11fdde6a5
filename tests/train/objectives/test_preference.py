"""DPO on the tiny model: the one step's loss with the preference objective is `dpo_loss` of the model's
log-probs, runs raise the margin, both reference modes agree, resume is exact, splash attention on a
sharded mesh gives XLA's losses, and pairs files are checked line by line."""

import importlib.util
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest
from flax import nnx

from phijax.data.pairs import (
    PairBatches,
    PreferencePair,
    PreferencePairs,
    fit,
    pair_rows,
)
from phijax.data.pipeline import tokenizer_for
from phijax.data.records import DataError
from phijax.errors import ConfigError
from phijax.parallel.mesh import batch_sharding, build_mesh
from phijax.pts import TokenPair, pair_record
from phijax.train.losses import dpo_loss, sequence_logps
from phijax.train.objectives import objective_for
from phijax.train.objectives.preference import cached_reference, global_pair_batch, write_reference
from phijax.train.optim import make_optimizer
from phijax.train.state import initial_params, state_from_params, state_layout
from phijax.train.step import make_step
from phijax.train.trainer import train

from .conftest import (
    REPO,
    TINY_DPO,
    TOKENIZER,
    dpo_config,
    dpo_overrides,
    metrics,
    pts_style_pairs,
    write_jsonl,
)


def score_pairs_tool():
    spec = importlib.util.spec_from_file_location("score_pairs", REPO / "tools" / "score_pairs.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    return tool


def full_forward_logps(graphdef, params_list, pairs, seq_len, pad_id, average):
    """[B, 2] log-probs under each params, from whole fp32 logits, one row per completion (no shared
    inputs, no chunks)."""
    rows, _ = pair_rows(pairs, seq_len, pad_id, shared=False)
    forward = jax.jit(lambda p, *xs: nnx.merge(graphdef, p)(*xs))
    return [
        np.asarray(
            sequence_logps(
                forward(params, rows["input_ids"], rows["positions"], rows["segment_ids"]),
                rows["targets"],
                rows["loss_mask"],
                average=average,
            )
        ).reshape(-1, 2)
        for params in params_list
    ]


@pytest.mark.parametrize(
    "kind, loss_type, grad_accum, reference",
    [
        ("whole", "ipo", 2, "precompute"),
        ("pts", "sigmoid", 2, "frozen"),
        # without accumulation: the same sums, one micro-batch (kept out of the default run for time)
        pytest.param("pts", "sigmoid", 1, "precompute", marks=pytest.mark.slow),
        pytest.param("whole", "sigmoid", 1, "frozen", marks=pytest.mark.slow),
    ],
)
def test_step_loss_is_dpo_loss_of_full_forward_logps(tmp_path, request, kind, loss_type, grad_accum, reference):
    cfg = dpo_config(
        tmp_path,
        request.getfixturevalue(f"{kind}_pairs_file"),
        **{
            "dpo.loss_type": loss_type,
            "dpo.beta": 0.5,
            "train.loss_chunk": 16,
            "dpo.reference": reference,
            "train.global_batch": 16,
            "train.grad_accum": grad_accum,
        },
    )
    mesh, tx = build_mesh(cfg.mesh), make_optimizer(cfg.optim, cfg.train.steps)
    layout, sharding = state_layout(cfg.model, tx, mesh, cfg.mesh.rules), batch_sharding(mesh, cfg.mesh.rules)
    tok = tokenizer_for(cfg.data.tokenizer)
    pairs = PreferencePairs(cfg.dpo.pairs, tok, cfg.model.vocab_size)
    assert pairs.single_token == (kind == "pts")
    local = next(PairBatches(pairs, cfg.train.global_batch, cfg.train.seq_len, tok.pad_id))
    batch_pairs = [pairs[int(i)] for i in local["pair_index"]]
    params = initial_params(cfg.model, layout, cfg.train.seed)
    reference_params = jax.tree.map(lambda x: x * 1.2, params)  # another model of the same layout
    policy, ref = full_forward_logps(
        layout.graphdef,
        [params, reference_params],
        batch_pairs,
        cfg.train.seq_len,
        tok.pad_id,
        average=loss_type == "ipo",
    )
    loss, expected = dpo_loss(policy[:, 0], policy[:, 1], ref[:, 0], ref[:, 1], 0.5, 0.0, loss_type)

    objective = objective_for(cfg)
    step = make_step(layout, tx, sharding, objective, grad_accum)
    state = state_from_params(params, tx, layout)
    if reference == "frozen":
        _, got = step(state, global_pair_batch(local, sharding), reference_params)
    else:
        _, got = step(state, global_pair_batch({**local, "reference_logps": ref}, sharding))
    assert float(got["loss"]) == pytest.approx(float(loss), rel=1e-5, abs=1e-6)
    assert float(got["pairs"]) == cfg.train.global_batch
    assert np.abs(policy - ref).max() > 0.05  # policy and reference really differ
    for key, value in expected.items():
        assert float(got[key]) == pytest.approx(float(value), rel=1e-5, abs=1e-5), key


def test_rows_train_exactly_the_completion_and_cut_long_prompts_from_the_left():
    pair = PreferencePair(prompt=(5, 6, 7, 8, 9), chosen=(10, 11), rejected=(12,))
    rows, cut = pair_rows([pair], seq_len=5, pad_id=0, shared=False)
    assert cut == 1  # 5 + 2 tokens need 6 positions; the prompt's first token goes
    assert rows["input_ids"].tolist() == [[6, 7, 8, 9, 10], [5, 6, 7, 8, 9]]
    assert rows["targets"].tolist() == [[7, 8, 9, 10, 11], [6, 7, 8, 9, 12]]
    assert rows["loss_mask"].tolist() == [[0, 0, 0, 1, 1], [0, 0, 0, 0, 1]]
    assert fit((1, 2, 3), tuple(range(10, 20)), seq_len=4) == ([3], [10, 11, 12, 13], True)


def test_tiny_dpo_run_raises_the_margin_and_the_chosen_log_prob(tmp_path, pts_pairs_file):
    result = train(dpo_config(tmp_path / "run", pts_pairs_file, **{"train.steps": 12, "checkpoint.every": 12}))
    # Scored afresh over all pairs by tools/score_pairs.py: the start (the reference) and the end.
    before, after = score_pairs_tool().main(
        [
            "--config",
            str(TINY_DPO),
            "--checkpoint",
            "init",
            "--checkpoint",
            str(tmp_path / "run"),
            *dpo_overrides(tmp_path / "score", pts_pairs_file),
        ]
    )
    assert after["gap"] > before["gap"] + 0.5 and after["chosen_over_rejected"] == 1.0
    assert after["logp_chosen"] > before["logp_chosen"]
    logged = metrics(tmp_path / "run")
    first, last = logged[1], logged[12]
    # Step 1 scores the initial parameters, which are the reference: zero rewards, loss log 2.
    assert first["rewards/margins"] == pytest.approx(0.0, abs=1e-6) and first["loss"] == pytest.approx(
        np.log(2), abs=1e-6
    )
    assert last["rewards/margins"] > 0.15 and last["rewards/accuracies"] == 1.0
    assert last["logps/chosen"] > first["logps/chosen"] + 1.0 and last["rewards/chosen"] > 0
    assert result.losses[12] < result.losses[1] - 0.05
    assert {"step", "loss", "lr", "grad_norm", "tokens_per_s", "rewards/rejected", "step_time_s"} <= set(last)


def test_precomputed_and_frozen_references_give_the_same_losses(tmp_path, whole_pairs_file):
    precomputed = train(dpo_config(tmp_path / "pre", whole_pairs_file)).losses
    frozen = train(dpo_config(tmp_path / "frozen", whole_pairs_file, **{"dpo.reference": "frozen"})).losses
    assert (tmp_path / "pre" / "reference_logps.npz").is_file()
    assert not (tmp_path / "frozen" / "reference_logps.npz").exists()
    assert sorted(precomputed) == sorted(frozen) == [1, 2, 3, 4]
    for step in precomputed:
        assert frozen[step] == pytest.approx(precomputed[step], rel=1e-5, abs=1e-6)
    assert precomputed[4] < precomputed[1]


def test_resume_continues_at_the_saved_step_and_pair(tmp_path, pts_pairs_file):
    run_dir = tmp_path / "run"
    straight = train(dpo_config(run_dir, pts_pairs_file, **{"data.seed": 3})).losses
    reference = np.load(run_dir / "reference_logps.npz")["logps"]
    # Lose step 4 and the reference cache: resume from step 2 recomputes the reference from the
    # initial parameters and must see the same pairs (second epoch's shuffle) with the same state.
    shutil.rmtree(run_dir / "checkpoints" / "4")
    (run_dir / "reference_logps.npz").unlink()
    resumed = train(dpo_config(run_dir, pts_pairs_file, **{"data.seed": 3}))
    assert resumed.resumed_from == 2 and sorted(resumed.losses) == [3, 4]
    for step in (3, 4):
        assert resumed.losses[step] == pytest.approx(straight[step], rel=1e-6)
    np.testing.assert_allclose(np.load(run_dir / "reference_logps.npz")["logps"], reference, rtol=1e-6)


def test_the_reference_cache_is_used_only_for_the_same_pairs_and_settings(tmp_path, caplog):
    cfg = dpo_config(tmp_path, "pairs.jsonl")
    logps = np.arange(8, dtype=np.float32).reshape(4, 2)
    write_reference(cfg, logps)
    np.testing.assert_array_equal(cached_reference(cfg, 4), logps)
    assert cached_reference(cfg, 5) is None and "recomputing" in caplog.text
    assert cached_reference(dpo_config(tmp_path, "pairs.jsonl", **{"train.seq_len": 128}), 4) is None
    assert cached_reference(dpo_config(tmp_path, "pairs.jsonl", **{"dpo.loss_type": "ipo"}), 4) is None


def test_pts_pair_records_are_read_as_single_token_pairs(tmp_path):
    tok = tokenizer_for(str(TOKENIZER))
    query = tok.encode("Compute 12 + 30.")
    pair = TokenPair(prefix=(7, 8), chosen=40, rejected=41, p_before=0.5, p_chosen=0.9, p_rejected=0.1)
    path = write_jsonl(
        tmp_path / "pts.jsonl", [{"problem_index": 0, "problem_id": None, **pair_record(pair, query, tok.decode)}]
    )
    pairs = PreferencePairs([str(path)], tok, 1024)
    assert pairs.single_token and len(pairs) == 1
    assert pairs[0] == PreferencePair(prompt=(*query, 7, 8), chosen=(40,), rejected=(41,))


def test_text_pairs_are_chat_formatted_with_the_closing_tag(tmp_path):
    tok = tokenizer_for(str(TOKENIZER))
    path = write_jsonl(tmp_path / "p.jsonl", [{"prompt": "Compute 1 + 2.", "chosen": "3", "rejected_ids": [9, 9]}])
    pair = PreferencePairs([str(path)], tok, 1024)[0]
    prompt, _ = tok.format_chat([{"role": "user", "content": "Compute 1 + 2."}], add_generation_prompt=True)
    assert pair == PreferencePair(tuple(prompt), (*tok.encode("3"), tok.eos_id), (9, 9))


GOOD = '{"prompt_ids": [1, 2], "chosen_id": 3, "rejected_id": 4}'


@pytest.mark.parametrize(
    "bad_line, message",
    [
        ('{"prompt_ids": [1, 2], "chosen_id": 3}', "no `rejected`, `rejected_ids` or `rejected_id`"),
        ('{"prompt_ids": [1, 2], "chosen_id": 3, "rejected_id": 4', "not valid JSON"),
        ('{"chosen": "a", "rejected": "b"}', "no `prompt` or `prompt_ids`"),
        ('{"prompt": "q", "chosen": "", "rejected": "b"}', "`chosen` must be non-empty text"),
        ('{"prompt_ids": [1, 5000], "chosen_id": 3, "rejected_id": 4}', "token id 5000 outside"),
        ("[1, 2, 3]", "expected a JSON object"),
    ],
)
def test_a_bad_pairs_file_names_its_file_and_line(tmp_path, bad_line, message):
    path = tmp_path / "pairs.jsonl"
    path.write_text(f"{GOOD}\n\n{bad_line}\n{GOOD}\n")
    with pytest.raises(DataError) as err:
        PreferencePairs([str(path)], tokenizer_for(str(TOKENIZER)), 1024)
    assert str(err.value).startswith(f"{path}:3: ") and message in str(err.value)
    assert "\n" not in str(err.value)


def test_a_missing_or_empty_pairs_file_is_named(tmp_path):
    tok = tokenizer_for(str(TOKENIZER))
    with pytest.raises(
        DataError,
        match=r"no file matches '[^']*missing.jsonl'; fix the path in dpo.pairs, "
        r"or write the pairs first",
    ):
        PreferencePairs([str(tmp_path / "missing.jsonl")], tok, 1024)
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(DataError, match="hold no pairs"):
        PreferencePairs([str(tmp_path / "empty.jsonl")], tok, 1024)


def test_phijax_dpo_reports_a_bad_pairs_file_in_one_line(tmp_path):
    path = write_jsonl(tmp_path / "pairs.jsonl", pts_style_pairs(2))
    path.write_text(path.read_text() + '{"prompt_ids": [1]}\n')
    command = [
        sys.executable,
        "-m",
        "phijax.cli",
        "dpo",
        "--config",
        str(TINY_DPO),
        *dpo_overrides(tmp_path / "run", path),
    ]
    done = subprocess.run(command, check=False, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    errors = [line for line in done.stderr.splitlines() if line.startswith("phijax: error:")]
    assert len(errors) == 1 and f"{path}:3:" in errors[0] and "Traceback" not in done.stderr


@pytest.mark.parametrize(
    "override, message",
    [
        ({"dpo.pairs": "[]"}, "dpo.pairs is empty"),
        ({"train.grad_accum": 3}, "multiple of train.grad_accum"),
        ({"dpo.loss_type": "ipo", "dpo.label_smoothing": 0.1}, "sigmoid loss only"),
        ({"dpo.beta": 0}, "dpo.beta"),
        ({"train.stage": "pretrain"}, "dpo: section is read only with train.stage=dpo"),
    ],
)
def test_dpo_config_errors_name_the_fix(tmp_path, override, message):
    cfg = dpo_config(tmp_path, "x.jsonl", **override)
    with pytest.raises(ConfigError, match=message):
        cfg.validate()


def test_an_empty_pairs_file_stops_the_start_and_leaves_no_run_directory(tmp_path):
    (tmp_path / "empty.jsonl").write_text("\n")
    cfg = dpo_config(tmp_path / "run", str(tmp_path / "empty.jsonl"))
    with pytest.raises(DataError, match="hold no pairs"):
        train(cfg)
    assert not Path(cfg.run_dir).exists()


def test_a_batch_of_pairs_that_does_not_split_over_the_devices_names_the_multiple(tmp_path, whole_pairs_file):
    with pytest.raises(ConfigError, match="multiple of 4"):
        train(dpo_config(tmp_path, whole_pairs_file, **{"train.global_batch": 6}))


@pytest.mark.slow  # the one loop's signal handling is tested on next-token runs (tests/train/test_preemption.py)
def test_sigterm_saves_the_step_and_exits_zero(tmp_path, pts_pairs_file):
    run_dir = tmp_path / "run"
    command = [
        sys.executable,
        "-m",
        "phijax.cli",
        "dpo",
        "--config",
        str(TINY_DPO),
        *dpo_overrides(run_dir, pts_pairs_file, **{"train.steps": 500, "checkpoint.every": 1000}),
    ]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not ((run_dir / "metrics.jsonl").exists() and len(metrics(run_dir)) >= 2):
        assert proc.poll() is None and time.time() < deadline, proc.communicate()[1][-2000:]
        time.sleep(0.01)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr[-2000:]
    saved = sorted(int(p.name) for p in (run_dir / "checkpoints").iterdir() if p.name.isdigit())
    assert saved == [max(metrics(run_dir))] and saved[0] < 500 and "SIGTERM" in stderr


def test_dpo_with_splash_attention_on_a_sharded_mesh_runs_the_kernel_sharded_and_gives_the_xla_losses(
    tmp_path, whole_pairs_file, monkeypatch
):
    import phijax.model.splash as splash
    from phijax.parallel.mesh import current_batch_sharding

    seen = []

    def spy():
        seen.append(current_batch_sharding())
        return seen[-1]

    monkeypatch.setattr(splash, "current_batch_sharding", spy)
    shape = {
        "mesh.data": 2,
        "mesh.fsdp": 2,
        "mesh.tensor": 2,
        "train.seq_len": 128,
        "train.steps": 2,
        "train.global_batch": 8,
        "checkpoint.every": 100,
    }
    xla = train(dpo_config(tmp_path / "xla", whole_pairs_file, **shape)).losses
    got = train(dpo_config(tmp_path / "splash", whole_pairs_file, **shape, **{"model.attention": "splash"})).losses
    # Traced in the reference pass and in the step (forward and backward): always under the batch sharding.
    assert seen and all(s is not None and dict(s.mesh.shape) == {"data": 2, "fsdp": 2, "tensor": 2} for s in seen)
    assert sorted(got) == sorted(xla) == [1, 2]
    for step in xla:
        assert got[step] == pytest.approx(xla[step], rel=1e-5, abs=1e-6)

"""The template plugin, pip-installed the way a user installs a plugin, is found and used by name only."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "plugins" / "template"


@pytest.fixture(scope="module")
def template_site(tmp_path_factory) -> Path:
    """`pip install --target` of a copy of plugins/template (the copy keeps build files out of the repo)."""
    work = tmp_path_factory.mktemp("template")
    shutil.copytree(TEMPLATE, work / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "build"))
    site = work / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--disable-pip-version-check",
            "--target",
            str(site),
            str(work / "src"),
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return site


def _env(site: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PHIJAX_")}
    return {**env, "PYTHONPATH": str(site), **extra}


def _run(args: list[str], site: Path, cwd: Path = REPO, **extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, env=_env(site, **extra), cwd=cwd, timeout=300)


def test_the_installed_template_is_discovered_and_listed(template_site):
    result = _run([sys.executable, "-m", "phijax.cli", "plugins", "--json"], template_site)
    assert result.returncode == 0, result.stderr
    plugins = {p["name"]: p for p in json.loads(result.stdout)["plugins"]}
    template = plugins["phijax-template"]
    assert (template["version"], template["source"]) == ("0.1.0", "third-party")
    assert template["entry_points"] == ["template = phijax_template.plugin"]
    assert template["components"] == {"data_sources": ["sums"], "evaluators": ["sums_exact_match"]}
    assert plugins["phijax"]["source"] == "built-in"


def test_disabling_autoload_hides_the_installed_template(template_site):
    result = _run(
        [sys.executable, "-m", "phijax.cli", "plugins", "--json"], template_site, PHIJAX_DISABLE_PLUGIN_AUTOLOAD="1"
    )
    report = json.loads(result.stdout)
    assert "phijax-template" not in {p["name"] for p in report["plugins"]}
    assert report["skipped"] == ["phijax-template"]


def test_the_templates_own_tests_pass_with_the_phijax_registry_fixture(template_site, tmp_path):
    shutil.copytree(TEMPLATE / "tests", tmp_path / "tests")
    result = _run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"], template_site, cwd=tmp_path
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 passed" in result.stdout


def _config(tmp_path: Path, **sections: str) -> Path:
    text = textwrap.dedent(f"""\
        run_dir: {tmp_path / "run"}
        model: {{preset: tiny}}
        data:
          tokenizer: {REPO / "configs" / "tiny" / "tokenizer.json"}
          sources:
            - {{name: additions, source: sums, weight: 1.0, count: 64, max_operand: 20}}
        train: {{steps: 2, global_batch: 8, seq_len: 32, log_every: 1}}
        checkpoint: {{every: 1000, async_save: false}}
        """)
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def test_the_templates_data_source_feeds_the_data_pipeline_despite_a_broken_plugin(
    template_site, make_dist, site_dir, tmp_path
):
    make_dist("broken-plugin", "import not_a_module_anywhere\n", version="0.3")
    script = textwrap.dedent("""\
        import sys
        from phijax.train.config import load_train_job
        from phijax.data.pipeline import build_batches, tokenizer_for
        cfg = load_train_job([sys.argv[1]])
        batch = next(build_batches(cfg))
        tokenizer = tokenizer_for(cfg.data.tokenizer)
        print(batch["input_ids"].shape)
        print(tokenizer.decode([int(t) for t in batch["input_ids"][0] if t != tokenizer.pad_id]))
        """)
    result = _run(
        [sys.executable, "-c", script, str(_config(tmp_path))],
        template_site,
        PYTHONPATH=f"{template_site}{os.pathsep}{site_dir}",
    )
    assert result.returncode == 0, result.stderr
    [warning] = result.stderr.strip().splitlines()  # the broken plugin costs one line, nothing more
    assert warning.startswith("phijax: warning: plugin broken-plugin 0.3 (entry point main = ")
    shape, text = result.stdout.split("\n", 1)
    assert shape == "(8, 32)"
    assert " + " in text and " = " in text  # the rows hold the template's additions


def test_the_templates_data_source_feeds_a_short_training_run(template_site, tmp_path):
    result = _run(
        [sys.executable, "-m", "phijax.cli", "train", "--config", str(_config(tmp_path))], template_site, XLA_FLAGS=""
    )  # one CPU device: the run, not the mesh, is under test
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert records[-1]["step"] == 2 and 0 < records[-1]["loss"] < 100
    assert "source: sums" in (tmp_path / "run" / "config.yaml").read_text()

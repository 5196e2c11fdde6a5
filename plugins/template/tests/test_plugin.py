"""Tests of the template plugin, using phijax's `phijax_registry` fixture (loaded by pytest itself)."""

import phijax_template.plugin as plugin
import pytest

from phijax.errors import PhijaxError


class AnswersEverything:
    """A stand-in for the model: answers each `a + b =` prompt correctly."""

    def generate(self, prompts, *, max_new_tokens, temperature=0.0, seed=0):
        sums = [sum(int(n) for n in p.rstrip(" =").split(" + ")) for p in prompts]
        return [f" {s}" for s in sums]


def test_sums_source_is_registered_and_deterministic(phijax_registry):
    registry = phijax_registry(plugin)
    source = registry.create("data_sources", "sums", count=5, seed=1)
    assert len(source) == 5
    assert source[3] == registry.create("data_sources", "sums", count=5, seed=1)[3]
    a, b = source[3]["prompt"].rstrip(" =").split(" + ")
    assert source[3]["text"].endswith(f"= {int(a) + int(b)}")


def test_sums_source_reports_bad_options_with_the_plugin_name(phijax_registry):
    registry = phijax_registry(plugin)
    with pytest.raises(PhijaxError, match=r"data source 'sums' \(plugin phijax_template.plugin\).*count"):
        registry.create("data_sources", "sums", count=0)


def test_sums_evaluator_scores_a_perfect_policy_as_one(phijax_registry):
    evaluate = phijax_registry(plugin).create("evaluators", "sums_exact_match", count=10)
    assert evaluate(AnswersEverything(), seed=0) == {"accuracy": 1.0, "n": 10.0}

"""Every hookspec is documented and exercised: a plugin registers through it and the core uses the result."""

from __future__ import annotations

import argparse
import inspect

import pytest

from phijax.plugins import hookimpl, hookspecs, protocols
from phijax.plugins.registry import KINDS, hook_name, load_registry


class EchoPolicy:
    """A stand-in model: upper-cases prompts, completes a prefix with its length, scores by length."""

    capabilities = frozenset({"generate"})
    name = "echo"

    def generate(
        self, prompts, *, max_new_tokens, temperature=0.0, top_p=1.0, num_samples=1, stop=(), seed=0, chat=True
    ):
        return [[p.upper()] * num_samples for p in prompts]

    def complete(self, prefix_ids, *, num_samples, max_new_tokens, temperature=1.0, seed=0):
        return [[len(prefix_ids)]] * num_samples

    def decode(self, ids):
        return " ".join(str(i) for i in ids)

    def loglikelihood(self, requests):
        return [-float(len(c)) for _, c in requests]


def _backend(*, mesh, **options):
    assert mesh.fsdp == -1 and options == {"checkpoint": "x"}
    return EchoPolicy()


def _data_source(**options):
    return [{"text": f"record {i}"} for i in range(options.get("n", 2))]


def _generator():
    def generate(seeds, *, policy, seed):
        for record in seeds:
            yield {"text": policy.generate([record["text"]], max_new_tokens=4)[0][0]}

    return generate


def _verifier():
    return lambda completion, problem: completion.strip() == problem["answer"]


def _estimator():
    def success_probability(problem, prefix_ids, *, policy, verifier, seed):
        outs = policy.complete(prefix_ids, num_samples=4, max_new_tokens=8, seed=seed)
        return sum(verifier(policy.decode(o), problem) for o in outs) / len(outs)

    return success_probability


class _Evaluator:
    requires = frozenset({"generate"})

    def items(self):
        return [{"id": "0", "text": "a A"}]

    def __call__(self, policy, *, seed):
        from phijax.plugins.protocols import EvaluationResult

        accuracy = float(policy.generate(["a"], max_new_tokens=1) == [["A"]])
        return EvaluationResult({"accuracy": accuracy}, {"accuracy": 0.0}, [{"id": "0", "acc": accuracy}])


def _evaluator():
    return _Evaluator()


class _ListLogger:
    def __init__(self, run_dir, **options):
        self.run_dir, self.logged, self.closed = run_dir, [], False

    def log(self, step, metrics):
        self.logged.append((step, dict(metrics)))

    def close(self):
        self.closed = True


def _command(parser):
    """Say hello."""
    parser.add_argument("--who", default="world")
    return lambda args: len(args.who)


def _use(kind: str, registry, tmp_path):
    """Build the component registered as `sample` and use it the way the core does; return the result."""
    policy, verify = EchoPolicy(), _verifier()
    if kind == "backends":
        from phijax.parallel.config import MeshConfig

        return registry.create(kind, "sample", mesh=MeshConfig(), checkpoint="x").generate(["a"], max_new_tokens=1)
    if kind == "data_sources":
        return list(registry.create(kind, "sample", n=3))
    if kind == "synthetic_generators":
        return list(registry.create(kind, "sample")([{"text": "seed"}], policy=policy, seed=0))
    if kind == "reward_estimators":
        return registry.create(kind, "sample")({"answer": "3"}, [1, 2, 3], policy=policy, verifier=verify, seed=0)
    if kind == "verifiers":
        return registry.create(kind, "sample")(" 42 ", {"answer": "42"})
    if kind == "evaluators":
        evaluator = registry.create(kind, "sample")
        return list(evaluator.items()), evaluator(policy, seed=0).metrics
    if kind == "metric_loggers":
        logger = registry.create(kind, "sample", tmp_path)
        logger.log(1, {"loss": 2.5})
        logger.close()
        return logger.logged, logger.closed
    parser = argparse.ArgumentParser()
    return registry.create(kind, "sample", parser)(parser.parse_args(["--who", "phi"]))


SAMPLES = {
    "backends": (_backend, [["A"]]),
    "data_sources": (_data_source, [{"text": "record 0"}, {"text": "record 1"}, {"text": "record 2"}]),
    "synthetic_generators": (_generator, [{"text": "SEED"}]),
    "reward_estimators": (_estimator, 1.0),
    "verifiers": (_verifier, True),
    "evaluators": (_evaluator, ([{"id": "0", "text": "a A"}], {"accuracy": 1.0})),
    "metric_loggers": (_ListLogger, ([(1, {"loss": 2.5})], True)),
    "commands": (_command, 3),
}


def _hookspec_names() -> set[str]:
    return {name for name, fn in inspect.getmembers(hookspecs, inspect.isfunction) if hasattr(fn, "phijax_spec")}


def test_every_hookspec_is_a_registry_kind_with_a_sample_below():
    assert _hookspec_names() == {hook_name(kind) for kind in KINDS}
    assert set(SAMPLES) == set(KINDS)


@pytest.mark.parametrize("hook", sorted(_hookspec_names()))
def test_every_hookspec_documents_its_component(hook):
    doc = inspect.getdoc(getattr(hookspecs, hook)) or ""
    assert doc.startswith("Register ") and "register(name, factory)" in doc
    assert "factory(" in doc and "protocols." in doc  # says what the factory returns, points to the protocol
    assert list(inspect.signature(getattr(hookspecs, hook)).parameters) == ["register"]


@pytest.mark.parametrize("kind", KINDS)
def test_every_hook_registers_a_component_the_core_can_use(kind, tmp_path):
    factory, expected = SAMPLES[kind]
    plugin = type(
        f"{kind}_plugin",
        (),
        {
            hook_name(kind): hookimpl(lambda self, register: register("sample", factory)),
        },
    )()
    registry = load_registry({}, builtins=False, plugins=[(f"{kind}-plugin", plugin)])
    assert registry.names(kind) == ["sample"]
    assert registry.hooks[f"{kind}-plugin"] == [hook_name(kind)]
    assert _use(kind, registry, tmp_path) == expected


@pytest.mark.parametrize(
    "protocol, sample",
    [
        (protocols.RandomAccessSource, [{"text": "a"}]),
        (protocols.Verifier, _verifier()),
        (protocols.MetricLogger, _ListLogger("run")),
    ],
)
def test_sample_components_satisfy_the_runtime_protocols(protocol, sample):
    assert isinstance(sample, protocol)

"""The hooks a phijax plugin may implement: the reference documentation for plugin authors.

Every hook is *register style*: it receives a `register(name, factory)` callable and calls it once
per component, so one plugin can provide many components and the core owns naming, collisions and
lookup. A plugin implements a hook with a function of the same name decorated `@hookimpl`::

    from phijax.plugins import hookimpl

    @hookimpl
    def phijax_register_data_sources(register):
        register("my_source", MySource)

Names are lower-case words joined by `_` (`jsonl`, `math_answer`); a config selects a component by
its name. Registering a name that another plugin registered for the same kind is an error naming
both plugins. Hooks run once per process when the registry loads; they must be cheap: no file I/O,
no jax, no network. What each kind of factory must return is in `phijax.plugins.protocols`.
"""

from __future__ import annotations

from collections.abc import Callable

from phijax.plugins import hookspec

Register = Callable[[str, Callable], None]
"""`register(name, factory)`: make `factory` available under `name` for this hook's kind."""


@hookspec
def phijax_register_backends(register: Register) -> None:
    """Register policy backends: `register(name, factory)`.

    `factory(*, mesh, **options)` receives the command's `MeshConfig` (a remote backend ignores it)
    and the keys of the config's `policy:` entry other than `backend` (`checkpoint`, `tokenizer`,
    `base_url`, ...), and returns a `protocols.TextPolicy` (a `protocols.TokenPolicy` where it can:
    tokenizer, stop tokens, completion from ids) whose `capabilities` say what it can do. See
    `protocols.BackendFactory`. Built-in: `local` (a phijax or HF checkpoint, loaded sharded on the
    mesh). Config: `policy: {backend: NAME, checkpoint: ..., ...options}`.
    """


@hookspec
def phijax_register_data_sources(register: Register) -> None:
    """Register data sources: `register(name, factory)`.

    `factory(**options)` receives the options of a `data.sources` config entry (every key but
    `name`, `source`, `weight`, `epochs`) and returns a random-access source (`__len__` and
    `__getitem__(index) -> record dict`, grain's protocol; preferred: exact resume and global
    shuffle) or an iterable of record dicts (streamed; resumed by skipping what was consumed).
    Records carry `text` or chat `messages`. See `protocols.DataSourceFactory`, `RandomAccessSource`.
    Config: `data.sources: [{name: mine, source: NAME, weight: 1.0, ...options}]`.
    """


@hookspec
def phijax_register_synthetic_generators(register: Register) -> None:
    """Register synthetic-data generators: `register(name, factory)`.

    `factory(**options)` returns a generator `gen(seeds, *, policy, seed) -> Iterator[record]` that
    turns seed records into new training records, prompting `policy` (a `protocols.Policy`, or None)
    and drawing randomness only from the integer `seed`. See `protocols.SyntheticGenerator`.
    """


@hookspec
def phijax_register_reward_estimators(register: Register) -> None:
    """Register success estimators for Pivotal Token Search: `register(name, factory)`.

    `factory(num_rollouts, max_new_tokens, temperature, stop_tokens, **options)` (the PTS job's settings,
    `stop_tokens` the ids that end a rollout, then its `estimator_options`) returns
    `est(problem, prefix_ids, *, policy, verifier, seed)`, the
    estimated p(success | query, prefix) in [0, 1] for the token prefix `prefix_ids` (a float, or a
    `phijax.pts.SuccessEstimate` carrying the rollouts), judging sampled completions with
    `verifier`. See `protocols.RewardEstimator`. Config: `estimator: NAME`.
    """


@hookspec
def phijax_register_verifiers(register: Register) -> None:
    """Register verifiers: `register(name, factory)`.

    `factory(**options)` returns `verify(completion: str, problem: dict) -> bool`: True when the
    completed answer is correct for the problem record (e.g. its `answer` or `tests`). Deterministic
    and side-effect free. See `protocols.Verifier`. Config: `verifier: NAME`.
    """


@hookspec
def phijax_register_evaluators(register: Register) -> None:
    """Register benchmark evaluators: `register(name, factory)`.

    `factory(**options)` (benchmark file, shots, limit, ...) returns an `Evaluator`: `requires` (the policy
    capabilities it needs), `items()` (every benchmark item's `id` and `text`, for decontamination) and
    `evaluator(policy, *, seed) -> EvaluationResult` (metrics, standard errors, per-sample records), scoring
    the model only through the `protocols.TextPolicy` methods. See `protocols.Evaluator`.
    Config: `evaluators: [{name: NAME, ...options}]` in `phijax eval` and `train.eval`.
    """


@hookspec
def phijax_register_metric_loggers(register: Register) -> None:
    """Register sinks for training metrics: `register(name, factory)`.

    `factory(run_dir: pathlib.Path, **options)` returns an object with
    `log(step: int, metrics: dict[str, float])` and `close()`; only process 0 creates loggers.
    See `protocols.MetricLogger`. Built-ins: `jsonl` (run_dir/metrics.jsonl), `tensorboard`.
    Config: `train.metric_loggers: [jsonl, NAME]`.
    """


@hookspec
def phijax_register_commands(register: Register) -> None:
    """Register `phijax <name>` subcommands: `register(name, factory)`.

    `factory(parser: argparse.ArgumentParser)` adds the command's arguments and returns
    `run(args: argparse.Namespace) -> int` (the exit status); the first line of the factory's
    docstring is the command's help. A name that a core command already uses is refused.
    See `protocols.CommandFactory`.
    """

"""What a component of each kind must provide: the contract between the core and plugins.

Every kind follows one pattern. A plugin registers a *factory* under a name; a config selects the
name; the core calls the factory with the options written next to the name in the config, once per
run, and then uses the object it returns through the protocol below. Only the core sees jax: plugin
components receive and return plain Python values (str, int, float, dict, list), so a plugin never
decides devices, sharding or batching.

Randomness is owned by the core. A component that needs random numbers receives an integer `seed`
(derived by the core from the run's seed and the call site) and draws everything from it, e.g.
`numpy.random.default_rng(seed)`; the same seed must give the same result, so runs resume exactly.

These are `typing.Protocol` classes: documentation first, checked structurally (`isinstance` works
for the `runtime_checkable` ones), never something a plugin has to inherit from.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Iterator, Mapping, Protocol, Sequence, Union, runtime_checkable

Record = dict[str, Any]
"""One example: a dict with a `text: str` field (pretraining) or a `messages` field (chat:
a list of `{"role": "system" | "user" | "assistant", "content": str}`), plus any other fields a
source wants to carry (`id`, `answer`, `tests`, ...). Problems for verifiers and estimators are
records too: `prompt` (the query) plus what the verifier needs (`answer`, `tests`)."""


# ------------------------------------------------------------------------------------ data sources
@runtime_checkable
class RandomAccessSource(Protocol):
    """Records by index (grain's `RandomAccessDataSource`): preferred, for exact resume and global shuffle.

    `len(source)` is the number of records; `source[i]` for `0 <= i < len(source)` returns record `i`.
    The same index must give the same record on every host and in every run: the pipeline decides
    which host reads which index and in what (seeded) order, and resumes by index.
    """

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> Record: ...


DataSource = Union[RandomAccessSource, Iterable[Record]]
"""What a data source factory returns: a `RandomAccessSource`, or any iterable of records (streamed
in order; resumed by skipping the records already consumed, so iteration must be deterministic)."""


class DataSourceFactory(Protocol):
    """`factory(**options) -> DataSource`.

    `options` are the keys of the config entry other than `name`, `source`, `weight` and `epochs`
    (e.g. `{name: web, source: jsonl, paths: [data/*.jsonl], text_field: body}` passes
    `paths=[...], text_field="body"`). Raise `phijax.errors.PhijaxError` for bad options (missing
    file, unknown option), with a message that names the fix. Open files lazily, not at import.
    """

    def __call__(self, **options: Any) -> DataSource: ...


# -------------------------------------------------------------------------------- the model, as seen
class Policy(Protocol):
    """The language model as plugins see it; implemented by the core (KV cache, batching, sharding).

    Plugins never hold model parameters: evaluators, estimators and generators receive a `Policy`.
    """

    def generate(self, prompts: Sequence[str], *, max_new_tokens: int, temperature: float = 0.0,
                 seed: int = 0) -> list[str]:
        """One completion (text after the prompt, chat template applied by the core) per prompt."""
        ...

    def complete(self, prefix_ids: Sequence[int], *, num_samples: int, max_new_tokens: int,
                 temperature: float = 1.0, seed: int = 0) -> list[list[int]]:
        """`num_samples` continuations (token ids after the prefix, up to EOS) of one templated prefix."""
        ...

    def decode(self, ids: Sequence[int]) -> str:
        """Token ids to text, with the policy's tokenizer."""
        ...

    def loglikelihood(self, requests: Sequence[tuple[str, str]]) -> list[float]:
        """Sum of log p(continuation | context) in nats for each `(context, continuation)` pair."""
        ...


# ---------------------------------------------------------------------------- post-training kinds
@runtime_checkable
class Verifier(Protocol):
    """Judge of one completed answer: `verifier(completion, problem) -> bool` (True = correct).

    `completion` is the full response text after the query; `problem` is the problem record (holding
    e.g. `answer` or `tests`). Deterministic, side-effect free, safe to call from several threads.
    A binary verdict is what PTS needs (p(success) is the mean of verdicts); graded rewards belong
    to reward estimators.
    """

    def __call__(self, completion: str, problem: Record) -> bool: ...


@runtime_checkable
class RewardEstimator(Protocol):
    """Estimator of p(success | query, prefix) for Pivotal Token Search.

    `estimator(problem, prefix_ids, *, policy, verifier, seed) -> float | SuccessEstimate`: the
    probability in [0, 1] that a response starting with the token ids `prefix_ids` (prompt included,
    templated) ends correct according to `verifier`. The built-in Monte-Carlo estimator samples k
    continuations with `policy.complete`, judges `policy.decode(...)` of each and returns a
    `phijax.pts.SuccessEstimate` (the probability plus each rollout's first token and verdict, from
    which PTS picks the accepted/rejected alternative tokens); a bare float is enough for PTS to
    find pivotal tokens. The core caches estimates per prefix.
    """

    def __call__(self, problem: Record, prefix_ids: Sequence[int], *, policy: Policy,
                 verifier: Verifier, seed: int) -> Any: ...


@runtime_checkable
class SyntheticGenerator(Protocol):
    """Generator over seed records: `generator(seeds, *, policy, seed) -> Iterator[Record]`.

    Reads seed records (web passages, questions, code) and yields new training records (same shape
    as data source records). `policy` is the model to prompt, or None when the generator needs none.
    Lazy: the core writes records as they come, so a generator must not collect everything first.
    """

    def __call__(self, seeds: Iterable[Record], *, policy: Policy | None, seed: int) -> Iterator[Record]: ...


@runtime_checkable
class Evaluator(Protocol):
    """Benchmark runner: `evaluator(policy, *, seed) -> dict[str, float]`.

    Runs its benchmark (named and configured by the factory's options: file, split, limit, shots)
    against `policy` and returns metrics by name, e.g. `{"accuracy": 0.71, "n": 500}`. The core
    prints them, writes them to the results JSON and sends them to the metric loggers.
    """

    def __call__(self, policy: Policy, *, seed: int) -> dict[str, float]: ...


# ---------------------------------------------------------------------------------- metric loggers
@runtime_checkable
class MetricLogger(Protocol):
    """Sink for training metrics, built as `factory(run_dir: Path, **options)`.

    `log(step, metrics)` receives the step number and plain floats by name (`loss`, `lr`,
    `tokens_per_s`, ...), already on the host; `close()` flushes and releases files at the end of the
    run (also on error). Only process 0 of a multi-host run creates loggers.
    """

    def log(self, step: int, metrics: Mapping[str, float]) -> None: ...

    def close(self) -> None: ...


MetricLoggerFactory = Callable[..., MetricLogger]
"""`factory(run_dir: pathlib.Path, **options) -> MetricLogger`."""


# ------------------------------------------------------------------------------------ CLI commands
CommandRunner = Callable[[Any], int]
"""What a command factory returns: `run(args: argparse.Namespace) -> int` (the exit status)."""


class CommandFactory(Protocol):
    """`factory(parser: argparse.ArgumentParser) -> run`: adds the command's arguments, returns its body.

    The first line of the factory's docstring is the command's help in `phijax --help`. The body
    raises `PhijaxError` for bad input (one line, exit 2). Import heavy modules inside `run`.
    """

    def __call__(self, parser: Any) -> CommandRunner: ...

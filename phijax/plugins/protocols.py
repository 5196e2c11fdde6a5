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

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

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


DataSource = RandomAccessSource | Iterable[Record]
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


# ------------------------------------------------------------------------- policies, by capability
GENERATE = "generate"
"""Capability: text in, text out (`TextPolicy.generate`). Every policy has it."""
LOGLIKELIHOOD = "loglikelihood"
"""Capability: summed log-probabilities of text continuations (`TextPolicy.loglikelihood`)."""
TOKENS = "tokens"
"""Capability: the token-level protocol (`TokenPolicy`): tokenizer, completion from ids, id log-probs."""


@runtime_checkable
class TextPolicy(Protocol):
    """A language model seen through text: what any backend offers, local or over HTTP.

    `capabilities` names what this policy can do (`GENERATE`, `LOGLIKELIHOOD`, `TOKENS`); a component
    that needs a capability checks it before spending anything and raises a one-line error otherwise.
    Backends probe their capabilities (an HTTP server may lack log-probabilities); never assume them.
    """

    capabilities: frozenset[str]
    name: str
    """What the policy is, for provenance and tables: e.g. `local:runs/sft/checkpoints/200`."""

    def generate(
        self,
        prompts: Sequence[str],
        *,
        max_new_tokens: int,
        temperature: float = 0.0,
        top_p: float = 1.0,
        num_samples: int = 1,
        stop: Sequence[str] = (),
        seed: int = 0,
        chat: bool = True,
    ) -> list[list[str]]:
        """`num_samples` completions of each prompt: result[i][j] is sample j of prompts[i].

        `chat`: the prompt is one user message and the policy applies its chat template; False sends the
        prompt as raw text (pretrained models, few-shot prompts). A completion ends at the model's stop
        tokens (not included) or before the first of the `stop` strings (cut there, as lm-eval's
        `until`), or after `max_new_tokens`. Temperature 0 is greedy. The same seed gives the same texts.
        """
        ...

    def loglikelihood(self, requests: Sequence[tuple[str, str]]) -> list[tuple[float, bool]]:
        """For each `(context, continuation)`: (sum of log p(continuation | context) in nats, is_greedy).

        is_greedy: every continuation token is the argmax given what precedes it. Needs LOGLIKELIHOOD.
        Tokenisation follows lm-evaluation-harness: context + continuation are encoded together and
        split at the context's length; an empty context is conditioned on the end-of-text token.
        """
        ...


@runtime_checkable
class TokenPolicy(TextPolicy, Protocol):
    """A language model seen through token ids (capability `TOKENS`): what PTS and rollouts need.

    Read-only: nothing mutates a policy. Stop tokens are passed per call, never set on the policy.
    """

    stop_tokens: tuple[int, ...]
    """The ids that end a completion by default (end-of-text and end-of-turn)."""
    eot_token_id: int
    """The end-of-text id (`<|endoftext|>`, lm-eval's `eot_token_id`): it separates documents, so a prompt
    in a pretraining document's form starts with it, and an empty log-likelihood context is conditioned on it."""

    def encode(self, text: str) -> list[int]:
        """Text to token ids, no special tokens added."""
        ...

    def decode(self, ids: Sequence[int]) -> str:
        """Token ids to text."""
        ...

    def chat_prompt(self, messages: Sequence[Mapping[str, str]]) -> list[int]:
        """The ids of `messages` in the chat template, ending with the assistant's generation prompt."""
        ...

    def complete(
        self,
        prefix_ids: Sequence[int],
        *,
        num_samples: int,
        max_new_tokens: int,
        temperature: float = 1.0,
        top_p: float = 1.0,
        seed: int = 0,
        stop_tokens: Sequence[int] | None = None,
    ) -> list[list[int]]:
        """`num_samples` continuations (ids after the prefix, stop token excluded) of one prefix.

        `stop_tokens` None means `self.stop_tokens`.
        """
        ...

    def loglikelihood_ids(self, requests: Sequence[tuple[Sequence[int], Sequence[int]]]) -> list[tuple[float, bool]]:
        """(sum log p(continuation | context), is_greedy) per `(context_ids, continuation_ids)`, batched."""
        ...


Policy = TextPolicy
"""What evaluators, estimators and generators receive: at least a `TextPolicy`; check `capabilities`."""


class BackendFactory(Protocol):
    """`factory(*, mesh, **options) -> TextPolicy` (a `TokenPolicy` where it can).

    `options` are the keys of a config's `policy:` entry other than `backend` (e.g. `checkpoint`,
    `tokenizer`, `base_url`). `mesh` is the command's `MeshConfig`; a remote backend ignores it.
    Raise `phijax.errors.PhijaxError` with one line for a bad option or an unreachable server.
    """

    def __call__(self, *, mesh: Any, **options: Any) -> TextPolicy: ...


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

    def __call__(
        self, problem: Record, prefix_ids: Sequence[int], *, policy: Policy, verifier: Verifier, seed: int
    ) -> Any: ...


@runtime_checkable
class SyntheticGenerator(Protocol):
    """Generator over seed records: `generator(seeds, *, policy, seed) -> Iterator[Record]`.

    Reads seed records (web passages, questions, code) and yields new training records (same shape
    as data source records). `policy` is the model to prompt, or None when the generator needs none.
    Lazy: the core writes records as they come, so a generator must not collect everything first.
    """

    def __call__(self, seeds: Iterable[Record], *, policy: Policy | None, seed: int) -> Iterator[Record]: ...


@dataclass(frozen=True)
class EvaluationResult:
    """What an evaluator returns for one policy.

    metrics: name → value (`acc`, `acc_norm`, `exact_match`, `pass@1`, ...), plain floats.
    stderr: name → standard error of that metric where one is defined (bootstrap-free closed forms).
    samples: one record per scored item: its `id`, the prompt/context, the generation or summed
    log-likelihoods, the target and the per-sample metric values (written with `--log-samples`).
    """

    metrics: dict[str, float]
    stderr: dict[str, float] = field(default_factory=dict)
    samples: list[Record] = field(default_factory=list)


@runtime_checkable
class Evaluator(Protocol):
    """Benchmark runner built by `factory(**options)` (file, shots, limit, ...): scores a policy on its items.

    `requires`: the policy capabilities it needs (e.g. `{LOGLIKELIHOOD}`); the core checks them before
    running and stops with one line naming the missing capability. `items()` yields every benchmark
    item as a record with `id` and `text` (all the text a training document could have copied: question,
    choices, answer), so decontamination indexes exactly what is evaluated. `evaluator(policy, seed=...)`
    runs the benchmark and returns an `EvaluationResult`; the core prints it, writes results.json and
    sends the metrics to the metric loggers.
    """

    requires: frozenset[str]

    def items(self) -> Iterable[Record]: ...

    def __call__(self, policy: TextPolicy, *, seed: int) -> EvaluationResult: ...


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

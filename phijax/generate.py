"""Batched sampling with a key/value cache: prefill the prompts once, then decode token by token.

    left-pad prompts to a bucketed length L ─► prefill (one forward pass, fills cache slots 0..L-1)
        ─► sample token 0 ─► while not all rows done: decode one token per row at slot L+t ─► sample

Layout. Prompts are *left*-padded to L, the next power of two (at least 16), so every row's last
prompt token sits at slot L-1, the next-token logits of prefill are read at one slot, and all rows
write each decoded token at the same cache slot. Positions count from a row's first real token
(padding slots get position 0 and are masked out as keys), so a row's logits do not depend on how
much padding its batch gave it. The cache holds keys and values as [layers, batch, L + max_new_tokens,
kv_heads, head_dim] in the compute dtype: kv heads are not repeated to the query heads (grouped-query
attention shrinks the cache by num_heads / num_kv_heads).

Compilation. One program per (batch, L, max_new_tokens, sampling settings, stop tokens): prefill,
then a `lax.while_loop` over decode steps that ends early once every row has emitted a stop token.
Batches are padded to a multiple of the devices the `batch` axis is sharded over.

Randomness. Row r's token at step t is drawn with `fold_in(fold_in(key(seed), row_id[r]), t)`: a row's
sample depends on the seed and its row id, never on which other rows share its batch.

Many rollouts from one prefix are the PTS workload: `sample_continuations` prefills the prefix once
(batch 1) and broadcasts its cache to the n rows before decoding.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from phijax.config import MeshConfig, ModelConfig
from phijax.errors import CheckpointError, PhijaxError
from phijax.model.phi4 import Phi4
from phijax.parallel.mesh import batch_sharded_activations, logical_to_spec

MIN_BUCKET = 16
CACHE_AXES = ("layers", "batch", "length", "kv_heads", "head_dim")


class GenerationError(PhijaxError):
    """Bad generation settings or prompts (empty prompt, too long for the model, bad sampling values)."""


@dataclass(frozen=True)
class Sampling:
    """How the next token is drawn from the logits, in HF's order: temperature, then top-k, then top-p.

    temperature 0 is greedy (argmax); top_k 0 and top_p 1 switch those filters off.
    """

    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0

    def __post_init__(self) -> None:
        if not self.temperature >= 0:
            raise GenerationError(f"temperature must be >= 0 (0 = greedy), got {self.temperature}")
        if self.top_k < 0:
            raise GenerationError(f"top_k must be >= 0 (0 = off), got {self.top_k}")
        if not 0 < self.top_p <= 1:
            raise GenerationError(f"top_p must be in (0, 1] (1 = off), got {self.top_p}")


class KVCache(NamedTuple):
    """Keys and values of every layer plus what the next decode step needs.

    k, v: [layers, batch, max_len, kv_heads, head_dim]; key_valid: [batch, max_len] (False on left
    padding); positions: [batch], the RoPE position of each row's next token; index: the cache slot
    the next token is written to (the same for every row, thanks to left padding).
    """

    k: jax.Array
    v: jax.Array
    key_valid: jax.Array
    positions: jax.Array
    index: jax.Array


@dataclass(frozen=True)
class Generation:
    """Sampled continuations: tokens [batch, max_new_tokens] (a row's stop token included, then
    `pad_id`); logprobs [batch, max_new_tokens], each token's log-probability in nats under the model
    (temperature 1, before top-k/top-p; 0 after the stop token); lengths [batch] (tokens generated
    per row, stop token included)."""

    tokens: np.ndarray
    logprobs: np.ndarray
    lengths: np.ndarray

    @classmethod
    def first_rows(cls, decoded: Any, n: int) -> Generation:
        """The first `n` rows of a decode loop's result (the rest filled the batch for sharding)."""
        return cls(np.asarray(decoded.tokens)[:n], np.asarray(decoded.logprobs)[:n], np.asarray(decoded.lengths)[:n])

    def rows(self, strip: Sequence[int] = ()) -> list[list[int]]:
        """Each row's generated ids; a final token in `strip` (e.g. the stop tokens) is dropped."""
        out = []
        for row, n in zip(self.tokens, self.lengths):
            ids = row[:n].tolist()
            out.append(ids[:-1] if ids and ids[-1] in strip else ids)
        return out


def bucket_length(n: int) -> int:
    """Padded prompt length: the next power of two >= n, at least 16 (few distinct compilations)."""
    return max(MIN_BUCKET, 1 << (max(n, 1) - 1).bit_length())


# ------------------------------------------------------------------------------ cache and steps
def init_cache(cfg: ModelConfig, batch: int, max_len: int, key_valid: jax.Array,
               positions: jax.Array) -> KVCache:
    """An empty cache of `max_len` slots in the compute dtype (GQA: `num_kv_heads` heads)."""
    shape = (cfg.num_layers, batch, max_len, cfg.num_kv_heads, cfg.head_dim)
    zeros = jnp.zeros(shape, jnp.dtype(cfg.compute_dtype))
    return KVCache(zeros, zeros, key_valid, positions, jnp.zeros((), jnp.int32))


def prefill(model: Phi4, tokens: jax.Array, lengths: jax.Array, max_len: int) -> tuple[jax.Array, KVCache]:
    """Run left-padded prompts through the model, filling cache slots 0..L-1.

    tokens: [batch, L], each row's prompt right-aligned; lengths: [batch] real prompt lengths (>= 1).
    Returns next-token logits [batch, vocab] (fp32) and a cache of `max_len` slots.
    """
    batch, prompt_len = tokens.shape
    padding = (prompt_len - lengths)[:, None]
    positions = jnp.maximum(jnp.arange(prompt_len)[None, :] - padding, 0)
    key_valid = jnp.arange(max_len)[None, :] >= padding
    cache = init_cache(model.cfg, batch, max_len, key_valid, lengths.astype(jnp.int32))
    hidden, (k, v) = model.cached_hidden_states(tokens, positions, (cache.k, cache.v), cache.index, key_valid)
    logits = model.logits(hidden[:, -1:])[:, 0]
    return logits, cache._replace(k=k, v=v, index=cache.index + prompt_len)


def decode_step(model: Phi4, cache: KVCache, tokens: jax.Array) -> tuple[jax.Array, KVCache]:
    """Feed one token per row [batch]; returns next-token logits [batch, vocab] and the advanced cache."""
    hidden, (k, v) = model.cached_hidden_states(
        tokens[:, None], cache.positions[:, None], (cache.k, cache.v), cache.index, cache.key_valid
    )
    advanced = cache._replace(k=k, v=v, positions=cache.positions + 1, index=cache.index + 1)
    return model.logits(hidden)[:, 0], advanced


# ------------------------------------------------------------------------------------- sampling
def filter_logits(logits: jax.Array, top_k: int = 0, top_p: float = 1.0) -> jax.Array:
    """Set logits outside the top-k and outside the nucleus to -inf. logits: [batch, vocab].

    The nucleus is the smallest set of most likely tokens whose probability reaches top_p (the most
    likely token is always kept); tokens tied with the last one kept are kept too.
    """
    vocab = logits.shape[-1]
    if (top_k == 0 or top_k >= vocab) and top_p >= 1.0:
        return logits
    if 0 < top_k < vocab:
        ranked = jax.lax.top_k(logits, top_k)[0]  # [batch, k], descending
    else:
        ranked = -jnp.sort(-logits, axis=-1)
    threshold = ranked[:, -1]
    if top_p < 1.0:
        probs = jax.nn.softmax(ranked, axis=-1)
        mass_before = jnp.cumsum(probs, axis=-1) - probs
        kept = jnp.sum(mass_before < top_p, axis=-1)  # >= 1: the first token has mass_before 0
        threshold = jnp.take_along_axis(ranked, kept[:, None] - 1, axis=-1)[:, 0]
    return jnp.where(logits < threshold[:, None], -jnp.inf, logits)


def sample_tokens(logits: jax.Array, keys: jax.Array, sampling: Sampling) -> jax.Array:
    """One token per row from logits [batch, vocab] with per-row keys [batch] → int32 [batch]."""
    if sampling.temperature == 0:
        return jnp.argmax(logits, axis=-1).astype(jnp.int32)
    filtered = filter_logits(logits / sampling.temperature, sampling.top_k, sampling.top_p)
    return jax.vmap(jax.random.categorical)(keys, filtered).astype(jnp.int32)


def _step_keys(row_keys: jax.Array, step: jax.Array) -> jax.Array:
    return jax.vmap(jax.random.fold_in, in_axes=(0, None))(row_keys, step)


# --------------------------------------------------------------------------------- the programs
@dataclass(frozen=True)
class _Plan:
    """Everything static about one compiled generation program (hashable: a jit cache key)."""

    max_new_tokens: int
    cache_len: int
    sampling: Sampling
    stop_tokens: tuple[int, ...]
    pad_id: int
    cache_sharding: NamedSharding | None
    row_sharding: NamedSharding | None


def _constrain(x: jax.Array, sharding: NamedSharding | None) -> jax.Array:
    return x if sharding is None else jax.lax.with_sharding_constraint(x, sharding)


def _rows_sharded(plan: _Plan) -> contextlib.AbstractContextManager:
    """Pin the model's residual stream to the row sharding while tracing (as the train step does)."""
    if plan.row_sharding is None:
        return contextlib.nullcontext()
    return batch_sharded_activations(plan.row_sharding)


class _Decoding(NamedTuple):
    """The decode loop's carry: rows' outputs so far ([batch, max_new_tokens]) and where they stand."""

    step: jax.Array  # next output column
    last: jax.Array  # [batch] token fed at this step
    tokens: jax.Array
    logprobs: jax.Array
    done: jax.Array  # [batch] a stop token was emitted
    lengths: jax.Array  # [batch] tokens emitted, stop token included
    cache: KVCache


def _pick(logits: jax.Array, keys: jax.Array, plan: _Plan) -> tuple[jax.Array, jax.Array]:
    """Sampled tokens [batch] and their log-probabilities under the model (temperature 1, unfiltered)."""
    token = sample_tokens(logits, keys, plan.sampling)
    logprob = jnp.take_along_axis(jax.nn.log_softmax(logits, axis=-1), token[:, None], axis=-1)[:, 0]
    return token, logprob


def _decode(model: Phi4, logits: jax.Array, cache: KVCache, row_keys: jax.Array, plan: _Plan) -> _Decoding:
    """Sample token 0 from `logits`, then decode until max_new_tokens or every row has stopped."""
    batch = logits.shape[0]
    stops = jnp.asarray(plan.stop_tokens or (-1,), jnp.int32)
    first, first_logprob = _pick(logits, _step_keys(row_keys, jnp.int32(0)), plan)
    columns = (batch, plan.max_new_tokens)
    start = _Decoding(
        step=jnp.int32(1), last=first,
        tokens=jnp.full(columns, plan.pad_id, jnp.int32).at[:, 0].set(first),
        logprobs=jnp.zeros(columns, jnp.float32).at[:, 0].set(first_logprob),
        done=jnp.isin(first, stops), lengths=jnp.ones((batch,), jnp.int32), cache=cache,
    )

    def not_finished(s: _Decoding) -> jax.Array:
        return (s.step < plan.max_new_tokens) & ~jnp.all(s.done)

    def one_token(s: _Decoding) -> _Decoding:
        logits, cache = decode_step(model, s.cache, s.last)
        cache = cache._replace(k=_constrain(cache.k, plan.cache_sharding), v=_constrain(cache.v, plan.cache_sharding))
        token, logprob = _pick(logits, _step_keys(row_keys, s.step), plan)
        token, logprob = jnp.where(s.done, plan.pad_id, token), jnp.where(s.done, 0.0, logprob)
        return _Decoding(
            step=s.step + 1, last=token,
            tokens=jax.lax.dynamic_update_slice_in_dim(s.tokens, token[:, None], s.step, axis=1),
            logprobs=jax.lax.dynamic_update_slice_in_dim(s.logprobs, logprob[:, None], s.step, axis=1),
            done=s.done | jnp.isin(token, stops), lengths=s.lengths + ~s.done, cache=cache,
        )

    return jax.lax.while_loop(not_finished, one_token, start)._replace(cache=None)


def _row_keys(seed: jax.Array, row_ids: jax.Array) -> jax.Array:
    return jax.vmap(jax.random.fold_in, in_axes=(None, 0))(jax.random.key(seed), row_ids)


@partial(jax.jit, static_argnames=("graphdef", "plan"))
def _generate_program(graphdef, state, tokens, lengths, row_ids, seed, *, plan: _Plan):
    model = nnx.merge(graphdef, state)
    with _rows_sharded(plan):
        logits, cache = prefill(model, _constrain(tokens, plan.row_sharding), lengths, plan.cache_len)
        cache = cache._replace(k=_constrain(cache.k, plan.cache_sharding), v=_constrain(cache.v, plan.cache_sharding))
        return _decode(model, logits, cache, _row_keys(seed, row_ids), plan)


@partial(jax.jit, static_argnames=("graphdef", "plan"))
def _continuations_program(graphdef, state, prefix, length, row_ids, seed, *, plan: _Plan):
    """Prefill one prefix [1, L] and decode len(row_ids) continuations from copies of its cache."""
    model = nnx.merge(graphdef, state)
    logits, cache = prefill(model, prefix, length, plan.cache_len)  # one row: replicated
    rows = row_ids.shape[0]

    def copies(x: jax.Array, axis: int) -> jax.Array:
        return jnp.repeat(x, rows, axis=axis)

    cache = KVCache(
        k=_constrain(copies(cache.k, 1), plan.cache_sharding), v=_constrain(copies(cache.v, 1), plan.cache_sharding),
        key_valid=copies(cache.key_valid, 0), positions=copies(cache.positions, 0), index=cache.index,
    )
    with _rows_sharded(plan):
        return _decode(model, copies(logits, 0), cache, _row_keys(seed, row_ids), plan)


# ----------------------------------------------------------------------------------- public API
def generate(
    model: Phi4,
    prompts: Sequence[Sequence[int]],
    *,
    max_new_tokens: int,
    sampling: Sampling = Sampling(),
    stop_tokens: Sequence[int] | None = None,
    seed: int = 0,
    row_ids: Sequence[int] | None = None,
    mesh: Mesh | None = None,
    rules: dict[str, Any] | None = None,
) -> Generation:
    """Sample a continuation of each prompt (token ids); rows stop at any of `stop_tokens`.

    `stop_tokens` default to the model's `eos_token_id`; `row_ids` (default 0..batch-1) pick each
    row's random stream. A sharded model is run on its own mesh (or `mesh`), rows sharded by the
    `batch` rule of `rules` (default: the config's default rules).
    """
    prompts = [_checked_prompt(model.cfg, p, max_new_tokens) for p in prompts]
    if not prompts:
        raise GenerationError("no prompts given")
    row_ids = list(range(len(prompts))) if row_ids is None else [int(r) for r in row_ids]
    if len(row_ids) != len(prompts):
        raise GenerationError(f"{len(row_ids)} row_ids for {len(prompts)} prompts: give one per prompt")
    mesh = mesh or _model_mesh(model)
    rules = rules or MeshConfig().rules
    n = len(prompts)
    batch = _padded_batch(n, mesh, rules)
    prompts = prompts + [prompts[-1]] * (batch - len(prompts))  # filler rows, dropped below
    row_ids = row_ids + [0] * (batch - len(row_ids))
    prompt_len = bucket_length(max(len(p) for p in prompts))
    tokens = np.full((batch, prompt_len), model.cfg.pad_token_id, np.int32)
    for row, prompt in enumerate(prompts):
        tokens[row, prompt_len - len(prompt):] = prompt
    plan = _plan(model.cfg, batch, prompt_len, max_new_tokens, sampling, stop_tokens, mesh, rules)
    graphdef, state = nnx.split(model)
    decoded = _generate_program(
        graphdef, state, jnp.asarray(tokens), jnp.asarray([len(p) for p in prompts], jnp.int32),
        jnp.asarray(row_ids, jnp.int32), jnp.int32(seed), plan=plan,
    )
    return Generation.first_rows(decoded, n)


def sample_continuations(
    model: Phi4,
    prefix_ids: Sequence[int],
    n: int,
    *,
    max_new_tokens: int,
    sampling: Sampling = Sampling(),
    stop_tokens: Sequence[int] | None = None,
    seed: int = 0,
    mesh: Mesh | None = None,
    rules: dict[str, Any] | None = None,
) -> Generation:
    """`n` continuations of one prefix: the prefix is prefilled once and its cache copied to n rows.

    Row i uses row id i, so the result equals `generate(model, [prefix_ids] * n, ...)`.
    """
    if n < 1:
        raise GenerationError(f"n must be at least 1, got {n}")
    prefix = _checked_prompt(model.cfg, prefix_ids, max_new_tokens)
    mesh = mesh or _model_mesh(model)
    rules = rules or MeshConfig().rules
    rows = _padded_batch(n, mesh, rules)
    prompt_len = bucket_length(len(prefix))
    tokens = np.full((1, prompt_len), model.cfg.pad_token_id, np.int32)
    tokens[0, prompt_len - len(prefix):] = prefix
    plan = _plan(model.cfg, rows, prompt_len, max_new_tokens, sampling, stop_tokens, mesh, rules)
    graphdef, state = nnx.split(model)
    decoded = _continuations_program(
        graphdef, state, jnp.asarray(tokens), jnp.asarray([len(prefix)], jnp.int32),
        jnp.arange(rows, dtype=jnp.int32), jnp.int32(seed), plan=plan,
    )
    return Generation.first_rows(decoded, n)


def _checked_prompt(cfg: ModelConfig, prompt: Sequence[int], max_new_tokens: int) -> list[int]:
    ids = [int(t) for t in prompt]
    if max_new_tokens < 1:
        raise GenerationError(f"max_new_tokens must be at least 1, got {max_new_tokens}")
    if not ids:
        raise GenerationError("empty prompt: generation needs at least one prompt token (e.g. BOS)")
    if min(ids) < 0 or max(ids) >= cfg.vocab_size:
        raise GenerationError(f"prompt token ids must be in [0, {cfg.vocab_size}): got {min(ids)}..{max(ids)}")
    if len(ids) + max_new_tokens > cfg.max_seq_len:
        raise GenerationError(
            f"prompt ({len(ids)} tokens) + max_new_tokens ({max_new_tokens}) exceeds the model's "
            f"max_seq_len {cfg.max_seq_len}: shorten the prompt or lower max_new_tokens"
        )
    return ids


def _plan(cfg: ModelConfig, batch: int, prompt_len: int, max_new_tokens: int, sampling: Sampling,
          stop_tokens: Sequence[int] | None, mesh: Mesh | None, rules: dict[str, Any]) -> _Plan:
    stops = (cfg.eos_token_id,) if stop_tokens is None else tuple(int(t) for t in stop_tokens)
    cache_len = prompt_len + max_new_tokens
    cache_shape = (cfg.num_layers, batch, cache_len, cfg.num_kv_heads, cfg.head_dim)
    cache_sharding = None if mesh is None else _divisible_sharding(mesh, rules, CACHE_AXES, cache_shape)
    row_sharding = None if mesh is None else _divisible_sharding(mesh, rules, ("batch",), (batch,))
    return _Plan(max_new_tokens, cache_len, sampling, stops, cfg.pad_token_id, cache_sharding, row_sharding)


# ------------------------------------------------------------------------------------- sharding
def _model_mesh(model: Phi4) -> Mesh | None:
    """The mesh the model's parameters are sharded over; None for an unsharded model."""
    sharding = getattr(model.embed[...], "sharding", None)
    if isinstance(sharding, NamedSharding) and sharding.mesh.size > 1:
        return sharding.mesh
    return None


def _batch_devices(mesh: Mesh | None, rules: dict[str, Any]) -> int:
    if mesh is None:
        return 1
    entry = logical_to_spec(("batch",), rules)[0]
    names = (entry,) if isinstance(entry, str) else tuple(entry or ())
    return int(np.prod([mesh.shape[a] for a in names]))


def _padded_batch(rows: int, mesh: Mesh | None, rules: dict[str, Any]) -> int:
    """`rows` rounded up to a multiple of the devices the batch axis is sharded over."""
    devices = _batch_devices(mesh, rules)
    return -(-rows // devices) * devices


def _divisible_sharding(mesh: Mesh, rules: dict[str, Any], axes: Sequence[str], shape: Sequence[int]) -> NamedSharding:
    """The rules' sharding of an activation, replicating any dimension its mesh axes do not divide
    (e.g. a single kv head on a tensor-parallel mesh)."""
    spec = []
    for size, entry in zip(shape, logical_to_spec(axes, rules)):
        names = (entry,) if isinstance(entry, str) else tuple(entry or ())
        spec.append(entry if size % int(np.prod([mesh.shape[a] for a in names])) == 0 else None)
    return NamedSharding(mesh, PartitionSpec(*spec))


# ----------------------------------------------------------------------- checkpoints and the CLI
def resolve_checkpoint(path: str | Path) -> Path:
    """A directory holding `params/`: a model dir or checkpoint step as given, a run dir's newest step."""
    here = Path(path)
    if not here.is_dir():
        raise CheckpointError(f"checkpoint {path} not found: pass a model directory, a checkpoint step or a run directory")
    if (here / "params").is_dir():
        return here
    steps = [d for d in (here / "checkpoints").glob("*") if d.name.isdigit() and (d / "params").is_dir()]
    if not steps:
        raise CheckpointError(
            f"{path} holds neither params/ nor checkpoints/<step>/params: pass a model directory "
            "(phijax convert from-hf), a checkpoint step or a run directory with a saved step"
        )
    return max(steps, key=lambda d: int(d.name))


def find_tokenizer(checkpoint: Path, cfg: ModelConfig) -> str | Path:
    """The tokenizer of a checkpoint: its run's `data.tokenizer`, a tokenizer.json beside the params,
    or Phi-4's for a model with Phi-4's vocabulary."""
    import yaml

    for directory in (checkpoint, *checkpoint.absolute().parents):
        if (directory / "tokenizer.json").is_file():
            return directory / "tokenizer.json"
        config = directory / "config.yaml"
        if config.is_file():
            named = ((yaml.safe_load(config.read_text()) or {}).get("data") or {}).get("tokenizer")
            if named:
                return named
    if cfg.vocab_size == 100_352:
        return "phi4"
    raise GenerationError(f"no tokenizer found for {checkpoint}: pass --tokenizer PATH (a tokenizer.json or `phi4`)")


def load_policy(checkpoint: str | Path, tokenizer: str | Path | None = None) -> ModelPolicy:
    """The `Policy` of a model dir, checkpoint step or run dir (its newest step), with its tokenizer."""
    from phijax.data import load_tokenizer
    from phijax.model.checkpoint import load_model_dir

    step = resolve_checkpoint(checkpoint)
    model = load_model_dir(step)
    tok = load_tokenizer(tokenizer or find_tokenizer(step, model.cfg))
    if tok.vocab_size > model.cfg.vocab_size:
        raise GenerationError(
            f"tokenizer has {tok.vocab_size} ids but the model only {model.cfg.vocab_size}: pass the model's --tokenizer"
        )
    return ModelPolicy(model, tok)


def chat_completions(checkpoint: str | Path, prompt: str, *, tokenizer: str | Path | None = None, n: int = 1,
                     max_new_tokens: int = 256, sampling: Sampling = Sampling(), seed: int = 0) -> list[str]:
    """`n` replies of the model in `checkpoint` to one user message (Phi-4's chat template applied)."""
    policy = load_policy(checkpoint, tokenizer)
    prompt_ids, _ = policy.tokenizer.format_chat([{"role": "user", "content": prompt}], add_generation_prompt=True)
    result = sample_continuations(policy.model, prompt_ids, n, max_new_tokens=max_new_tokens, sampling=sampling,
                                  stop_tokens=policy.stop_tokens, seed=seed)
    return [policy.decode(ids) for ids in result.rows(strip=policy.stop_tokens)]


# --------------------------------------------------------------------------- the plugins' Policy
class ModelPolicy:
    """The `phijax.plugins.protocols.Policy` plugins see, backed by a model and its tokenizer.

    `max_new_tokens` is clipped to the room the model's `max_seq_len` leaves after the bucketed
    prompt (the clip depends on the bucket only, so it does not multiply compilations).
    """

    def __init__(self, model: Phi4, tokenizer: Any, *, mesh: Mesh | None = None, rules: dict[str, Any] | None = None):
        self.model, self.tokenizer, self.mesh, self.rules = model, tokenizer, mesh, rules
        self.stop_tokens = sorted({tokenizer.eos_id, model.cfg.eos_token_id})

    def generate(self, prompts: Sequence[str], *, max_new_tokens: int, temperature: float = 0.0,
                 seed: int = 0) -> list[str]:
        """One reply per user message (chat template applied), stop token removed."""
        chats = [self.tokenizer.format_chat([{"role": "user", "content": p}], add_generation_prompt=True)[0]
                 for p in prompts]
        result = generate(self.model, chats, max_new_tokens=self._room(max(map(len, chats), default=1), max_new_tokens),
                          sampling=Sampling(temperature=temperature), stop_tokens=self.stop_tokens, seed=seed,
                          mesh=self.mesh, rules=self.rules)
        return [self.tokenizer.decode(ids) for ids in result.rows(strip=self.stop_tokens)]

    def complete(self, prefix_ids: Sequence[int], *, num_samples: int, max_new_tokens: int,
                 temperature: float = 1.0, seed: int = 0) -> list[list[int]]:
        """`num_samples` continuations of one prefix (prefilled once), each up to but excluding its stop token."""
        result = sample_continuations(
            self.model, prefix_ids, num_samples, max_new_tokens=self._room(len(prefix_ids), max_new_tokens),
            sampling=Sampling(temperature=temperature), stop_tokens=self.stop_tokens, seed=seed,
            mesh=self.mesh, rules=self.rules,
        )
        return result.rows(strip=self.stop_tokens)

    def decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(list(ids))

    def loglikelihood(self, requests: Sequence[tuple[str, str]]) -> list[float]:
        """Sum of log p(continuation | context) in nats; context and continuation encoded separately."""
        scores = []
        for context, continuation in requests:
            ids = self.tokenizer.encode(context) + self.tokenizer.encode(continuation)
            targets = len(self.tokenizer.encode(continuation))
            if len(ids) > self.model.cfg.max_seq_len or len(ids) < 2 or targets < 1:
                raise GenerationError(
                    f"loglikelihood needs a non-empty context and continuation within max_seq_len "
                    f"{self.model.cfg.max_seq_len} tokens, got {len(ids) - targets} + {targets}"
                )
            padded = np.full((1, bucket_length(len(ids))), self.model.cfg.pad_token_id, np.int32)
            padded[0, :len(ids)] = ids
            graphdef, state = nnx.split(self.model)
            scores.append(float(_token_logprob_sum(graphdef, state, jnp.asarray(padded), len(ids) - targets, len(ids))))
        return scores

    def _room(self, prompt_len: int, max_new_tokens: int) -> int:
        room = self.model.cfg.max_seq_len - bucket_length(prompt_len)
        if room < 1:
            raise GenerationError(f"a prompt of {prompt_len} tokens leaves no room under max_seq_len {self.model.cfg.max_seq_len}")
        return min(max_new_tokens, room)


@partial(jax.jit, static_argnames=("graphdef",))
def _token_logprob_sum(graphdef, state, ids: jax.Array, first: jax.Array, end: jax.Array) -> jax.Array:
    """Sum of log p(ids[t] | ids[:t]) for first <= t < end; ids: [1, L] right-padded."""
    logprobs = jax.nn.log_softmax(nnx.merge(graphdef, state)(ids)[0, :-1], axis=-1)
    picked = jnp.take_along_axis(logprobs, ids[0, 1:, None], axis=-1)[:, 0]  # picked[t-1] = log p(ids[t])
    t = jnp.arange(1, ids.shape[1])
    return jnp.sum(jnp.where((t >= first) & (t < end), picked, 0.0))

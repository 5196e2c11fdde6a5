"""The local policy: a phijax or HF checkpoint loaded sharded over a mesh, seen through the protocols.

`load_policy(checkpoint, tokenizer=None, mesh=MeshConfig(...))` resolves what the user named
(`phijax.model.checkpoint.resolve_checkpoint`: model dir, checkpoint step, run dir, HF dir), builds
the abstract model, gives every parameter the sharding the mesh rules say, and restores the weights
straight into those shardings (orbax for phijax checkpoints; one array at a time for HF safetensors),
so no device ever holds the whole model unless the rules replicate it. `mesh=None` keeps every
parameter on the first device.

`LocalPolicy` implements `phijax.plugins.protocols.TokenPolicy` (and so `TextPolicy`) over the model,
its tokenizer and the mesh. It is read-only: stop tokens are arguments, never state.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jax
import numpy as np
from flax import nnx
from jax.sharding import Mesh, SingleDeviceSharding

from phijax.errors import CheckpointError
from phijax.inference.api import generate, sample_continuations
from phijax.inference.cache import bucket_length
from phijax.inference.loglikelihood import ROWS_PER_PASS, score
from phijax.inference.sampling import GenerationError, sampling_method
from phijax.model.checkpoint import ModelSource, find_tokenizer, load_newest_intact, nest
from phijax.model.config import ModelConfig
from phijax.model.phi4 import Phi4
from phijax.parallel.config import DEFAULT_RULES, MeshConfig
from phijax.plugins.protocols import GENERATE, LOGLIKELIHOOD, TOKENS

BATCH_SIZE = 32  # rows sampled per program call by `generate`


class LocalPolicy:
    """A `TokenPolicy` over a `Phi4` (sharded or not) and its tokenizer.

    `mesh`/`rules`: where rows of generation and scoring are sharded (default: the model's own mesh and
    the default rules). `batch_size`: rows per generation call; `rows_per_pass`: packed rows per
    log-likelihood forward pass. `max_new_tokens` is clipped to the room `max_seq_len` leaves after
    the bucketed prompt (the clip depends on the bucket only, so it does not multiply compilations).
    """

    capabilities = frozenset({GENERATE, LOGLIKELIHOOD, TOKENS})

    def __init__(
        self,
        model: Phi4,
        tokenizer: Any,
        *,
        mesh: Mesh | None = None,
        rules: dict[str, Any] | None = None,
        name: str = "local",
        source: ModelSource | None = None,
        batch_size: int = BATCH_SIZE,
        rows_per_pass: int = ROWS_PER_PASS,
    ) -> None:
        if tokenizer.vocab_size > model.cfg.vocab_size:
            raise GenerationError(
                f"tokenizer has {tokenizer.vocab_size} ids but the model only "
                f"{model.cfg.vocab_size}: pass the model's tokenizer"
            )
        if batch_size < 1 or rows_per_pass < 1:
            raise GenerationError(f"batch_size ({batch_size}) and rows_per_pass ({rows_per_pass}) must be >= 1")
        self.model, self.tokenizer, self.mesh, self.rules = model, tokenizer, mesh, rules or DEFAULT_RULES
        self.name, self.source, self.batch_size, self.rows_per_pass = name, source, batch_size, rows_per_pass
        self.stop_tokens: tuple[int, ...] = tuple(sorted({tokenizer.eos_id, tokenizer.eod_id, model.cfg.eos_token_id}))
        self.tokens_used = 0  # prompt + generated tokens of every `generate`/`complete` (synth summaries)
        self._count_lock = threading.Lock()

    # ---------------------------------------------------------------------------- tokens
    @property
    def eot_token_id(self) -> int:
        """The end-of-text id (`<|endoftext|>`): separates documents, conditions an empty context."""
        return self.tokenizer.eod_id

    def encode(self, text: str) -> list[int]:
        """Text to ids, no special tokens added."""
        return list(self.tokenizer.encode(text))

    def decode(self, ids: Sequence[int]) -> str:
        """Ids to text."""
        return self.tokenizer.decode([int(t) for t in ids])

    def chat_prompt(self, messages: Sequence[Mapping[str, str]]) -> list[int]:
        """The ids of `messages` in Phi-4's chat template, ending with the assistant generation prompt."""
        return self.tokenizer.format_chat(list(messages), add_generation_prompt=True)[0]

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
        top_k: int = 0,
    ) -> list[list[int]]:
        """`num_samples` continuations of one prefix (prefilled once), each without its stop token.

        `top_k` (0: off) goes beyond the protocol: a local model can filter its logits any way.
        """
        stops = self.stop_tokens if stop_tokens is None else tuple(stop_tokens)
        result = sample_continuations(
            self.model,
            prefix_ids,
            num_samples,
            max_new_tokens=self._room(len(prefix_ids), max_new_tokens),
            sampling=sampling_method(temperature, top_k, top_p),
            stop_tokens=stops,
            seed=seed,
            mesh=self.mesh,
            rules=self.rules,
        )
        rows = result.rows(strip=stops)
        self._count(len(prefix_ids) + sum(map(len, rows)))
        return rows

    def loglikelihood_ids(self, requests: Sequence[tuple[Sequence[int], Sequence[int]]]) -> list[tuple[float, bool]]:
        """(sum log p(continuation | context) in nats, is_greedy) per `(context_ids, continuation_ids)`,
        packed many per forward pass (`phijax.inference.loglikelihood`)."""
        return score(self.model, requests, rows_per_pass=self.rows_per_pass, mesh=self.mesh, rules=self.rules)

    # ---------------------------------------------------------------------------- text
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
        """`num_samples` completions per prompt; result[i][j] is sample j of prompts[i].

        Sample j of prompt i draws from row id i * num_samples + j, so a completion depends on the seed and
        its place in the request, never on how rows were batched. Prompts are batched by length.
        """
        if num_samples < 1:
            raise GenerationError(f"num_samples must be at least 1, got {num_samples}")
        ids = [self._prompt_ids(p, chat) for p in prompts]
        sampling = sampling_method(temperature, top_p=top_p)
        out = [[""] * num_samples for _ in ids]
        rows = sorted(((i, j) for i in range(len(ids)) for j in range(num_samples)), key=lambda r: len(ids[r[0]]))
        for begin in range(0, len(rows), self.batch_size):
            part = rows[begin : begin + self.batch_size]
            batch = [ids[i] for i, _ in part]
            result = generate(
                self.model,
                batch,
                max_new_tokens=self._room(max(map(len, batch)), max_new_tokens),
                sampling=sampling,
                stop_tokens=self.stop_tokens,
                seed=seed,
                row_ids=[i * num_samples + j for i, j in part],
                mesh=self.mesh,
                rules=self.rules,
            )
            made = result.rows(strip=self.stop_tokens)
            self._count(sum(map(len, batch)) + sum(map(len, made)))
            for (i, j), row in zip(part, made):
                out[i][j] = cut_at_stop(self.decode(row), stop)
        return out

    def _count(self, tokens: int) -> None:
        with self._count_lock:
            self.tokens_used += tokens

    def loglikelihood(self, requests: Sequence[tuple[str, str]]) -> list[tuple[float, bool]]:
        """(sum log p(continuation | context), is_greedy) per text request, tokenised as lm-eval does."""
        return self.loglikelihood_ids([self.encode_pair(c, x) for c, x in requests])

    def encode_pair(self, context: str, continuation: str) -> tuple[list[int], list[int]]:
        """lm-evaluation-harness's split: trailing spaces of the context move to the continuation, the
        two are encoded together and cut at the context's length; an empty context is the end-of-text id.
        """
        if not context:
            return [self.eot_token_id], self.encode(continuation)
        spaces = len(context) - len(context.rstrip())
        if spaces:
            context, continuation = context[:-spaces], context[-spaces:] + continuation
        whole, head = self.encode(context + continuation), self.encode(context)
        return head, whole[len(head) :]

    def _prompt_ids(self, prompt: str, chat: bool) -> list[int]:
        if chat:
            return self.chat_prompt([{"role": "user", "content": prompt}])
        return self.encode(prompt) or [self.eot_token_id]

    def _room(self, prompt_len: int, max_new_tokens: int) -> int:
        room = self.model.cfg.max_seq_len - bucket_length(prompt_len)
        if room < 1:
            raise GenerationError(
                f"a prompt of {prompt_len} tokens leaves no room under max_seq_len "
                f"{self.model.cfg.max_seq_len}: shorten it"
            )
        return min(max_new_tokens, room)


def cut_at_stop(text: str, stop: Sequence[str]) -> str:
    """`text` up to the first occurrence of any stop string (lm-eval's `until`); unchanged without one."""
    cuts = [text.find(s) for s in stop if s]
    return text[: min((c for c in cuts if c >= 0), default=len(text))]


# ------------------------------------------------------------------------------------- loading
def load_policy(
    checkpoint: str | Path, *, tokenizer: str | Path | None = None, mesh: MeshConfig | None = None, **settings: Any
) -> LocalPolicy:
    """The `LocalPolicy` of a model dir, checkpoint step, run dir (newest step) or HF directory.

    mesh: parameters are restored straight into the shardings its rules give (None: the first device).
    tokenizer: default `find_tokenizer` (beside the weights, the run's `data.tokenizer`, or Phi-4's).
    settings: `batch_size`, `rows_per_pass` (see `LocalPolicy`).
    """
    from phijax.data import load_tokenizer

    jax_mesh = None if mesh is None else _build_mesh(mesh)
    rules = mesh.rules if mesh is not None else DEFAULT_RULES
    # A run dir: the newest step that loads (a damaged one is skipped with a warning naming it).
    model, source = load_newest_intact(checkpoint, lambda s: load_sharded_model(s, jax_mesh, rules))
    tok = load_tokenizer(tokenizer or find_tokenizer(source, model.cfg.vocab_size))
    return LocalPolicy(model, tok, mesh=jax_mesh, rules=rules, name=f"local:{source.path}", source=source, **settings)


def _build_mesh(mesh: MeshConfig) -> Mesh:
    from phijax.parallel.mesh import build_mesh

    return build_mesh(mesh)


def load_sharded_model(source: ModelSource, mesh: Mesh | None, rules: dict[str, Any]) -> Phi4:
    """The model at `source`, every parameter placed as `rules` shard it over `mesh` (None: device 0)."""
    from phijax.model.checkpoint import read_model_config, restore_params
    from phijax.model.hf import read_hf_config, read_hf_params

    cfg: ModelConfig = read_model_config(source.path) if source.kind == "phijax" else read_hf_config(source.path)
    graphdef, state = nnx.split(nnx.eval_shape(lambda: Phi4(cfg, rngs=nnx.Rngs(0))))
    target = _sharded_target(state, mesh, rules)
    if source.kind == "phijax":
        params = restore_params(source.path, target)
    else:
        params = _put_hf_params(nest(read_hf_params(source.path, cfg)), target, source.path)
    nnx.replace_by_pure_dict(state, params)
    return nnx.merge(graphdef, state)


def _sharded_target(state: nnx.State, mesh: Mesh | None, rules: dict[str, Any]) -> dict[str, Any]:
    """Pure dict of `ShapeDtypeStruct`s carrying each parameter's sharding."""
    if mesh is None:
        device = SingleDeviceSharding(jax.devices()[0])
        shardings = jax.tree.map(lambda _: device, nnx.to_pure_dict(state))
    else:
        from phijax.parallel.mesh import state_shardings

        shardings = nnx.to_pure_dict(state_shardings(state, mesh, rules))
    return jax.tree.map(
        lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), nnx.to_pure_dict(state), shardings
    )


def _put_hf_params(arrays: dict[str, Any], target: dict[str, Any], path: Path) -> dict[str, Any]:
    """Place HF arrays (nested like the model's params) one at a time onto their shardings."""

    def put(t: jax.ShapeDtypeStruct, a: np.ndarray) -> jax.Array:
        if tuple(a.shape) != tuple(t.shape):
            raise CheckpointError(f"{path}: a tensor of shape {a.shape} where the model expects {t.shape}")
        return jax.device_put(np.asarray(a, dtype=t.dtype), t.sharding)

    try:
        return jax.tree.map(put, target, arrays)
    except ValueError as err:
        raise CheckpointError(f"{path} does not hold the parameters of its config.json: {str(err)[:200]}") from None

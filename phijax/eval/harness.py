"""`PhijaxLM`: any phijax policy as an lm-evaluation-harness model (`lm_eval.api.model.LM`).

    lm-eval task ─► Instances ─► PhijaxLM ─► policy.loglikelihood_ids  (packed, many requests per pass)
                                          └► policy.generate          (KV-cache sampler, batched by length)

Built from a checkpoint (`PhijaxLM(pretrained=PATH, batch_size=8)`, or through lm-eval as
`simple_evaluate(model="phijax", model_args="pretrained=PATH,batch_size=8")`; PATH is a model dir,
checkpoint step, run dir or HF directory, loaded by the `local` backend) or around a policy already in
memory (`PhijaxLM(policy=p)`: the `lm_eval` evaluator, evaluation during training).

Tokenisation is lm-eval's own (`TemplateLM`): context and continuation encoded together and split at the
context's length, trailing spaces of the context moved to the continuation, an empty context conditioned
on `prefix_token_id` (the end-of-text token). Rolling log-likelihoods use lm-eval's disjoint windows of
`max_length` tokens. Generation is cut at the first `until` string, as lm-eval's `hf` backend does.

Multi-host: every process builds the same `PhijaxLM`; process 0 runs lm-eval and each policy call it
makes is broadcast (`Lockstep`) so the other processes, inside `follow()`, make the same call and the
sharded programs run in step (levanter's scheme). `release()` on process 0 ends the followers' loop.
"""

from __future__ import annotations

import json
import pickle
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from lm_eval import utils as lm_utils
from lm_eval.api.model import TemplateLM
from lm_eval.api.registry import register_model
from lm_eval.models.utils import handle_stop_sequences, normalize_gen_kwargs
from tqdm import tqdm

from phijax.errors import PhijaxError
from phijax.eval.capabilities import require
from phijax.plugins.protocols import GENERATE, LOGLIKELIHOOD, TOKENS

DEFAULT_MAX_LENGTH = 2048  # lm-eval's `hf` default when a model states no context length
DEFAULT_BATCH_SIZE = 64


class Lockstep:
    """Process 0 leads, the others follow: each policy call is broadcast before it is made.

    `transport(payload: bytes | None) -> bytes`: the leader passes its bytes and every process gets them
    back (default: `jax.experimental.multihost_utils.broadcast_one_to_all`). Single-process: inactive.
    """

    STOP = "__stop__"

    def __init__(
        self,
        transport: Callable[[bytes | None], bytes] | None = None,
        *,
        leader: bool | None = None,
        active: bool | None = None,
    ) -> None:
        if active is None or leader is None:
            import jax

            active = jax.process_count() > 1 if active is None else active
            leader = jax.process_index() == 0 if leader is None else leader
        self.active, self.leader = active, leader
        self.transport = transport or _jax_broadcast

    def call(self, policy: Any, method: str, *args: Any, **kwargs: Any) -> Any:
        """`policy.method(*args, **kwargs)`, announced to the followers first when multi-host."""
        if self.active:
            self.transport(pickle.dumps((method, args, kwargs)))
        return getattr(policy, method)(*args, **kwargs)

    def release(self) -> None:
        """Leader: end the followers' `follow` loops."""
        if self.active and self.leader:
            self.transport(pickle.dumps((self.STOP, (), {})))

    def follow(self, policy: Any) -> int:
        """Follower: make every call the leader announces until it releases us; returns the calls made."""
        calls = 0
        while True:
            method, args, kwargs = pickle.loads(self.transport(None))
            if method == self.STOP:
                return calls
            getattr(policy, method)(*args, **kwargs)
            calls += 1


def _jax_broadcast(payload: bytes | None) -> bytes:
    """Process 0's bytes on every process: the length first, then the bytes as a uint8 array."""
    from jax.experimental import multihost_utils

    size = multihost_utils.broadcast_one_to_all(np.int64(len(payload) if payload is not None else 0))
    buffer = np.frombuffer(payload, np.uint8) if payload is not None else np.zeros(int(size), np.uint8)
    return np.asarray(multihost_utils.broadcast_one_to_all(buffer)).astype(np.uint8).tobytes()


@register_model("phijax")
class PhijaxLM(TemplateLM):
    """lm-eval's model interface over a phijax policy (a `TokenPolicy`; a `TextPolicy` for text requests).

    pretrained: checkpoint for the `local` backend (ignored when `policy` is given). batch_size:
    requests handed to the policy per call (also the local backend's generation batch). max_length:
    context window for truncation and rolling windows (default: the model's `max_seq_len`).
    max_gen_toks: default generation budget. prefix_token_id: what an empty context is conditioned on
    (default: the policy's end-of-text id). backend_options: other keys for the backend factory.
    """

    def __init__(
        self,
        pretrained: str | None = None,
        *,
        policy: Any = None,
        tokenizer: str | None = None,
        batch_size: int | str | None = None,
        max_length: int | None = None,
        max_gen_toks: int = 256,
        prefix_token_id: int | None = None,
        seed: int = 0,
        backend: str = "local",
        mesh: Any = None,
        lockstep: Lockstep | None = None,
        max_batch_size: int | None = None,
        device: str | None = None,
        **backend_options: Any,
    ) -> None:
        super().__init__()
        del max_batch_size, device  # lm-eval passes them to every model; the mesh decides placement here
        self.batch_size = _batch_size(batch_size)
        if policy is None:
            policy = _load_policy(pretrained, tokenizer, backend, mesh, self.batch_size, backend_options)
        self.policy = policy
        self.has_tokens = TOKENS in getattr(policy, "capabilities", ())
        self._max_length, self.max_gen_toks, self.seed = max_length, int(max_gen_toks), int(seed)
        self._prefix_token_id = prefix_token_id
        self.lockstep = lockstep or Lockstep()

    # ---------------------------------------------------------------------------- tokens
    @property
    def eot_token_id(self) -> int:
        """The end-of-text id: `policy.eot_token_id`, else its first stop token."""
        require(self.policy, {TOKENS}, "token-level lm-eval requests")
        eot = getattr(self.policy, "eot_token_id", None)
        return int(eot) if eot is not None else int(self.policy.stop_tokens[0])

    @property
    def prefix_token_id(self) -> int:
        return self.eot_token_id if self._prefix_token_id is None else int(self._prefix_token_id)

    @property
    def max_length(self) -> int:
        """Context window: the argument, else the policy's `max_seq_len` (or its model's), else 2048."""
        if self._max_length:
            return int(self._max_length)
        found = getattr(self.policy, "max_seq_len", None)
        if found is None:
            found = getattr(getattr(getattr(self.policy, "model", None), "cfg", None), "max_seq_len", None)
        return int(found or DEFAULT_MAX_LENGTH)

    @property
    def tokenizer_name(self) -> str:
        return str(getattr(self.policy, "name", "phijax")).replace("/", "__")

    def tok_encode(self, string: str, add_special_tokens: bool | None = None, **kwargs: Any) -> list[int]:
        """Text to ids; phijax tokenizers add no special tokens, so `add_special_tokens` changes nothing."""
        return list(self.policy.encode(string))

    def tok_decode(self, tokens: Sequence[int]) -> str:
        return self.policy.decode(list(tokens))

    # ---------------------------------------------------------------------------- log-likelihoods
    def loglikelihood(self, requests: list[Any], disable_tqdm: bool = False) -> list[tuple[float, bool]]:
        """(sum log p(continuation | context), is_greedy) per `Instance.args == (context, continuation)`."""
        require(self.policy, {LOGLIKELIHOOD}, "lm-eval loglikelihood requests")
        if self.has_tokens:
            return super().loglikelihood(requests, disable_tqdm=disable_tqdm)
        pairs = [tuple(r.args) for r in requests]  # a text-level policy tokenises as lm-eval does itself
        return self._in_chunks("loglikelihood", pairs, "loglikelihood requests", disable_tqdm)

    def _loglikelihood_tokens(
        self, requests: list[tuple[Any, list[int], list[int]]], disable_tqdm: bool = False, **kwargs: Any
    ) -> list[tuple[float, bool]]:
        """Score `(key, context_ids, continuation_ids)`, longest context first and equal contexts together:
        a chunk's requests pack alike and the choices of one question share its segment."""
        order = sorted(range(len(requests)), key=lambda i: (-len(requests[i][1]), tuple(requests[i][1])))
        pairs = [(requests[i][1], requests[i][2]) for i in order]
        scored = self._in_chunks(
            "loglikelihood_ids", pairs, "loglikelihood requests", disable_tqdm, key=lambda pair: tuple(pair[0])
        )
        out: list[tuple[float, bool]] = [(0.0, False)] * len(requests)
        for i, (logprob, greedy) in zip(order, scored, strict=True):
            out[i] = (float(logprob), bool(greedy))
            key = requests[i][0]
            if key is not None:
                self.cache_hook.add_partial("loglikelihood", key, out[i])
        return out

    def loglikelihood_rolling(self, requests: list[Any], disable_tqdm: bool = False) -> list[float]:
        """Whole-document log-likelihood per `Instance.args == (text,)`, over lm-eval's disjoint windows."""
        require(self.policy, {LOGLIKELIHOOD, TOKENS}, "lm-eval loglikelihood_rolling requests")
        windows: list[tuple[list[int], list[int]]] = []
        owners: list[int] = []
        for i, (text,) in enumerate(r.args for r in requests):
            ids = self.tok_encode(text)
            for window in lm_utils.get_rolling_token_windows(
                token_list=ids, prefix_token=self.prefix_token_id, max_seq_len=self.max_length, context_len=1
            ):
                windows.append(lm_utils.make_disjoint_window(window))
                owners.append(i)
        scored = self._loglikelihood_tokens([(None, c, x) for c, x in windows], disable_tqdm=disable_tqdm)
        totals = [0.0] * len(requests)
        for owner, (logprob, _) in zip(owners, scored, strict=True):
            totals[owner] += logprob
        for request, total in zip(requests, totals, strict=True):
            self.cache_hook.add_partial("loglikelihood_rolling", request.args, total)
        return totals

    def _in_chunks(
        self, method: str, items: list[Any], what: str, disable_tqdm: bool, key: Callable[[Any], Any] | None = None
    ) -> list[Any]:
        """`policy.method(chunk)` over chunks of `batch_size` items, with a requests/s progress bar.

        key: chunks hold `batch_size` distinct keys instead (items with one key adjacent). Token
        log-likelihoods chunk by context, so `batch_size` counts forward rows as in lm-eval's `hf`
        backend, which runs the choices of one context as one row.
        """
        out: list[Any] = []
        with tqdm(total=len(items), desc=what, unit="req", disable=True if disable_tqdm else None) as bar:
            for chunk in _chunks(items, self.batch_size, key):
                out.extend(self.lockstep.call(self.policy, method, chunk))
                bar.update(len(chunk))
        return out

    # ---------------------------------------------------------------------------- generation
    def generate_until(self, requests: list[Any], disable_tqdm: bool = False) -> list[str]:
        """Continuation of each `Instance.args == (context, gen_kwargs)`, cut at the first `until` string.

        Requests with equal generation settings run together, shortest contexts first (the policy batches
        them by length); greedy unless `do_sample`/`temperature` say otherwise.
        """
        require(self.policy, {GENERATE}, "lm-eval generate_until requests")
        groups: dict[str, list[int]] = {}
        for i, request in enumerate(requests):
            groups.setdefault(json.dumps(request.args[1], sort_keys=True, default=str), []).append(i)
        out = [""] * len(requests)
        with tqdm(
            total=len(requests), desc="generate_until requests", unit="req", disable=True if disable_tqdm else None
        ) as bar:
            for members in groups.values():
                settings = _generation_settings(requests[members[0]].args[1], self.max_gen_toks)
                contexts = [self._fit_context(requests[i].args[0], settings["max_new_tokens"]) for i in members]
                for begin in range(0, len(members), self.batch_size):
                    chunk = slice(begin, begin + self.batch_size)
                    texts = self.lockstep.call(
                        self.policy, "generate", contexts[chunk], chat=False, seed=self.seed, **settings
                    )
                    for i, samples in zip(members[chunk], texts, strict=True):
                        out[i] = cut_at_stop(samples[0], settings["stop"])
                        self.cache_hook.add_partial("generate_until", requests[i].args, out[i])
                    bar.update(len(texts))
        return out

    def _fit_context(self, context: str, max_new_tokens: int) -> str:
        """The context, cut from the left to leave `max_new_tokens` of room (lm-eval's `hf` truncation)."""
        if not self.has_tokens:
            return context
        room = self.max_length - max_new_tokens
        if room < 1:
            raise PhijaxError(
                f"max_gen_toks {max_new_tokens} leaves no room for a context in max_length "
                f"{self.max_length}: lower max_gen_toks"
            )
        ids = self.tok_encode(context)
        return context if len(ids) <= room else self.tok_decode(ids[-room:])

    # ---------------------------------------------------------------------------- multi-host
    def follow(self) -> int:
        """Processes other than 0: make the policy calls process 0 announces until `release()`."""
        return self.lockstep.follow(self.policy)

    def release(self) -> None:
        """Process 0, after lm-eval returned: end the followers' loops."""
        self.lockstep.release()

    def get_model_info(self) -> dict[str, Any]:
        return {"model_name": str(getattr(self.policy, "name", "phijax"))}


def _chunks(items: list[Any], size: int, key: Callable[[Any], Any] | None) -> list[list[Any]]:
    """Consecutive chunks of `size` items, or (with `key`) of `size` distinct keys."""
    if key is None:
        return [items[i : i + size] for i in range(0, len(items), size)]
    chunks: list[list[Any]] = []
    keys: set[Any] = set()
    for item in items:
        if not chunks or (key(item) not in keys and len(keys) == size):
            chunks.append([])
            keys = set()
        chunks[-1].append(item)
        keys.add(key(item))
    return chunks


def cut_at_stop(text: str, stop: Sequence[str]) -> str:
    """`text` before the first occurrence of any non-empty stop string (lm-eval's `until`)."""
    cuts = [text.find(s) for s in stop if s]
    return text[: min((c for c in cuts if c >= 0), default=len(text))]


def _generation_settings(gen_kwargs: dict[str, Any], default_max: int) -> dict[str, Any]:
    """lm-eval's gen_kwargs as `TextPolicy.generate` keywords: max_new_tokens, temperature, top_p, stop."""
    kwargs = normalize_gen_kwargs(dict(gen_kwargs), default_max)
    stop = handle_stop_sequences(kwargs.pop("until", None), eos=None)
    sample = bool(kwargs.get("do_sample")) and float(kwargs.get("temperature") or 0.0) > 0
    return {
        "max_new_tokens": int(kwargs["max_gen_toks"]),
        "temperature": float(kwargs.get("temperature") or 0.0) if sample else 0.0,
        "top_p": float(kwargs.get("top_p") or 1.0) if sample else 1.0,
        "stop": tuple(stop),
    }


def _batch_size(value: int | str | None) -> int:
    """lm-eval passes `auto`, `auto:N`, None or a number; phijax packs requests itself, so auto = default."""
    if value is None or (isinstance(value, str) and value.startswith("auto")):
        return DEFAULT_BATCH_SIZE
    size = int(value)
    if size < 1:
        raise PhijaxError(f"batch_size is {size}: use a positive number of requests per call")
    return size


def _load_policy(
    pretrained: str | None, tokenizer: str | None, backend: str, mesh: Any, batch_size: int, options: dict[str, Any]
) -> Any:
    """The policy of `pretrained` through the registered backend (`local`: sharded over `mesh`)."""
    from phijax.parallel.config import MeshConfig
    from phijax.plugins.registry import get_registry

    if pretrained is None:
        raise PhijaxError("PhijaxLM needs `pretrained=PATH` (a checkpoint or HF directory) or `policy=`")
    if isinstance(mesh, dict):
        mesh = MeshConfig(**mesh)
    named = {"checkpoint": str(pretrained), "tokenizer": tokenizer}
    if backend == "local":
        named["batch_size"] = batch_size
    named.update(options)
    return get_registry().create("backends", backend, mesh=mesh, **{k: v for k, v in named.items() if v is not None})

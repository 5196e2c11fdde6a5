"""The `openai` backend: any OpenAI-compatible server (vLLM, SGLang, llama.cpp, hosted) as a policy.

`policy: {backend: openai, base_url: URL, model: NAME, api_key_env: VAR, concurrency: 16, timeout_s: 60,
max_retries: 3}`. Requests go through the `openai` client (`pip install 'phijax[synth]'`), whose own
retries with exponential back-off cover timeouts, dropped connections, 408/409/429 (honouring
`Retry-After`) and 5xx, and never other 4xx. What the client cannot see, a malformed JSON body or a
different number of choices than asked, is asked again up to `max_retries` times; then the request
fails with a `RequestFailed` naming the reason, which the stage runner counts. At most `concurrency`
requests are in flight across all callers. The API key is read from the environment variable named by
`api_key_env` and kept only inside the client: never in `name`, reprs, configs, logs or provenance.

At start the server is probed (a few one-token requests): chat, completions, `n`, `seed`, token-id
prompts with returned token ids (vLLM's `return_token_ids`, `/tokenize`, `/detokenize`) and
log-probabilities. The probe decides `capabilities`: GENERATE (chat), LOGLIKELIHOOD (echoed
log-probabilities), TOKENS (token ids in and out, so PTS can draw rollouts through the server).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from phijax.plugins import hookimpl
from phijax.plugins.protocols import GENERATE, LOGLIKELIHOOD, TOKENS
from phijax.synth import RequestFailed, SynthError

FEATURES = ("chat", "completions", "n", "seed", "token_ids", "logprobs")


class OpenAIPolicy:
    """A `TextPolicy` (a `TokenPolicy` where the probe found token ids) over an OpenAI-compatible server."""

    stop_tokens: tuple[int, ...] = ()  # the server's own end-of-sequence ids apply unless a call names others

    def __init__(
        self,
        *,
        base_url: str,
        model: str,
        api_key_env: str | None = None,
        concurrency: int = 16,
        timeout_s: float = 60.0,
        max_retries: int = 3,
        probe: bool = True,
    ):
        openai = _import_openai()
        if concurrency < 1 or timeout_s <= 0 or max_retries < 0:
            raise SynthError("backend openai: concurrency must be >= 1, timeout_s > 0 and max_retries >= 0; fix policy")
        self.base_url, self.model, self.max_retries = base_url.rstrip("/"), model, max_retries
        self.name = f"openai:{model}"
        self.tokens_used = 0
        self._client = openai.OpenAI(
            base_url=self.base_url, api_key=_api_key(api_key_env), max_retries=max_retries, timeout=timeout_s
        )
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="openai")
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(concurrency)
        self.features = {f: True for f in FEATURES}
        if probe:
            self.features = self._probe()
        self.capabilities = self._capabilities()

    def __repr__(self) -> str:
        return f"OpenAIPolicy({self.base_url!r}, model={self.model!r})"

    def _capabilities(self) -> frozenset[str]:
        f = self.features
        caps = {GENERATE} if f["chat"] or f["completions"] else set()
        if f["logprobs"]:
            caps.add(LOGLIKELIHOOD)
        if f["token_ids"]:
            caps.add(TOKENS)
        return frozenset(caps)

    # ------------------------------------------------------------------------------ probing
    def _probe(self) -> dict[str, bool]:
        """What the server can do, from one-token requests; an unreachable server is one error line."""
        self._check_reachable()
        chat = [{"role": "user", "content": "Say OK."}]
        f = {
            "chat": self._works(
                lambda: self._client.chat.completions.create(model=self.model, messages=chat, max_tokens=1)
            )
        }
        f["completions"] = self._works(
            lambda: self._client.completions.create(model=self.model, prompt="Hello", max_tokens=1)
        )
        if f["chat"]:
            f["n"] = self._works(
                lambda: self._client.chat.completions.create(model=self.model, messages=chat, max_tokens=1, n=2),
                choices=2,
            )
            f["seed"] = self._works(
                lambda: self._client.chat.completions.create(model=self.model, messages=chat, max_tokens=1, seed=1)
            )
        else:
            f["n"] = f["completions"] and self._works(
                lambda: self._client.completions.create(model=self.model, prompt="Hello", max_tokens=1, n=2), choices=2
            )
            f["seed"] = f["completions"] and self._works(
                lambda: self._client.completions.create(model=self.model, prompt="Hello", max_tokens=1, seed=1)
            )
        f["logprobs"] = f["completions"] and self._works(
            lambda: self._client.completions.create(
                model=self.model, prompt="Hello world", max_tokens=1, echo=True, logprobs=1
            ),
            field="logprobs",
        )
        f["token_ids"] = f["completions"] and self._probe_token_ids()
        return f

    def _check_reachable(self) -> None:
        import openai

        try:
            served = [m.id for m in self._client.with_options(max_retries=0, timeout=10.0).models.list().data]
        except openai.APIConnectionError as err:
            raise SynthError(
                f"backend openai: cannot reach {self.base_url} ({type(err).__name__}); start the "
                f"server or fix policy.base_url"
            ) from None
        except openai.AuthenticationError:
            raise SynthError(
                f"backend openai: {self.base_url} refused the API key (401); set the variable "
                f"named by policy.api_key_env"
            ) from None
        except (openai.APIStatusError, ValueError, TypeError, AttributeError):
            return  # no usable /models listing: the requests below decide
        if served and self.model not in served:
            raise SynthError(
                f"backend openai: model {self.model!r} is not served at {self.base_url} "
                f"(it serves: {', '.join(served[:5])}); fix policy.model"
            )

    def _works(self, call: Any, *, choices: int = 1, field: str | None = None) -> bool:
        import openai

        try:
            resp = call()
        except (openai.APIStatusError, ValueError, TypeError):
            return False
        except openai.APIConnectionError as err:
            raise SynthError(
                f"backend openai: {self.base_url} stopped answering while probing "
                f"({type(err).__name__}); check the server"
            ) from None
        got = getattr(resp, "choices", None)
        if not isinstance(got, list) or len(got) != choices:
            return False
        return field is None or bool(getattr(getattr(got[0], field, None), "token_logprobs", None))

    def _probe_token_ids(self) -> bool:
        try:
            ids = self.encode("Hello")
            self.decode(ids)
        except RequestFailed:
            return False
        return self._works(
            lambda: _require_token_ids(
                self._client.completions.create(
                    model=self.model, prompt=ids, max_tokens=1, extra_body={"return_token_ids": True}
                )
            )
        )

    # ------------------------------------------------------------------------------ requests
    def _request(self, create: Any, params: dict[str, Any], expect: int) -> list[Any]:
        """One request through the client (its retries), its choices in index order; RequestFailed otherwise."""
        import openai

        reason, detail = "malformed", ""
        for _ in range(self.max_retries + 1):  # only content faults the client cannot see come back here
            try:
                with self._slots:  # at most `concurrency` requests in flight, whichever thread asks
                    resp = create(**params)
            except openai.APITimeoutError:
                raise RequestFailed("timeout", f"no answer within the timeout from {self.base_url}") from None
            except openai.APIConnectionError as err:
                raise RequestFailed("connection", type(err.__cause__ or err).__name__) from None
            except openai.APIStatusError as err:
                raise RequestFailed(f"http_{err.status_code}", str(err.message).splitlines()[0][:120]) from None
            except (ValueError, TypeError) as err:  # JSONDecodeError, pydantic ValidationError
                reason, detail = "malformed", type(err).__name__
                continue
            got = getattr(resp, "choices", None)
            if not isinstance(got, list):
                reason, detail = "malformed", "no choices"
                continue
            if len(got) != expect:
                reason, detail = "wrong_choices", f"asked {expect}, got {len(got)}"
                continue
            self._count(getattr(resp, "usage", None))
            return sorted(got, key=lambda c: getattr(c, "index", 0) or 0)
        raise RequestFailed(reason, detail)

    def _count(self, usage: Any) -> None:
        total = getattr(usage, "total_tokens", None)
        if isinstance(total, int):
            with self._lock:
                self.tokens_used += total

    def _sampling(
        self, max_new_tokens: int, temperature: float, top_p: float, seed: int, stop: Sequence[str]
    ) -> dict[str, Any]:
        params: dict[str, Any] = {
            "model": self.model,
            "max_tokens": max_new_tokens,
            "temperature": temperature,
            "top_p": top_p,
        }
        if self.features["seed"]:
            params["seed"] = seed
        if stop:
            params["stop"] = list(stop)
        return params

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
        """`num_samples` completions per prompt, requests sent concurrently (see `TextPolicy.generate`)."""
        use_chat = chat and self.features["chat"] or not self.features["completions"]
        base = self._sampling(max_new_tokens, temperature, top_p, seed, stop)
        one_call = num_samples == 1 or self.features["n"]
        jobs = []
        for prompt in prompts:
            for j in range(1 if one_call else num_samples):
                params = (
                    dict(base, n=num_samples)
                    if one_call
                    else dict(base, seed=seed + j)
                    if "seed" in base
                    else dict(base)
                )
                if num_samples == 1:
                    params.pop("n", None)
                jobs.append((prompt, params))
        if len(jobs) == 1:  # the stage runner's usual call: no hop through the pool
            texts = self._texts(*jobs[0], use_chat)
        else:
            texts = [t for f in [self._pool.submit(self._texts, *job, use_chat) for job in jobs] for t in f.result()]
        return [_cut(texts[i * num_samples : (i + 1) * num_samples], stop) for i in range(len(prompts))]

    def _texts(self, prompt: str, params: dict[str, Any], use_chat: bool) -> list[str]:
        n = params.get("n", 1)
        if use_chat:
            got = self._request(self._post_chat, dict(params, messages=[{"role": "user", "content": prompt}]), n)
            return [(getattr(c.message, "content", None) or "") for c in got]
        got = self._request(self._post_completion, dict(params, prompt=prompt), n)
        return [c.text or "" for c in got]

    def _post_chat(self, **body: Any) -> Any:
        """`chat.completions.create` without its per-call TypedDict transform (a quarter of the client's CPU
        per request; our bodies hold plain JSON values only): the client's documented `post`, same retries.
        Every request after the start-up probe goes through here or `_post_completion`."""
        from openai.types.chat import ChatCompletion

        return self._client.post("/chat/completions", body=body, cast_to=ChatCompletion)

    def _post_completion(self, **body: Any) -> Any:
        """`completions.create` without its per-call transform, as `_post_chat`."""
        from openai.types import Completion

        return self._client.post("/completions", body=body, cast_to=Completion)

    # ----------------------------------------------------------------------- log-likelihoods
    def loglikelihood(self, requests: Sequence[tuple[str, str]]) -> list[tuple[float, bool]]:
        """(sum log p(continuation | context), is_greedy) from echoed prompt log-probabilities (LOGLIKELIHOOD)."""
        self._need(LOGLIKELIHOOD)
        return list(self._pool.map(lambda r: self._scored(r[0] + r[1], len(r[0]), len(r[0]) + len(r[1])), requests))

    def loglikelihood_ids(self, requests: Sequence[tuple[Sequence[int], Sequence[int]]]) -> list[tuple[float, bool]]:
        """As `loglikelihood`, over token ids (TOKENS and LOGLIKELIHOOD): the last len(continuation) positions."""
        self._need(TOKENS)
        self._need(LOGLIKELIHOOD)

        def one(req: tuple[Sequence[int], Sequence[int]]) -> tuple[float, bool]:
            ids = [int(t) for t in req[0]] + [int(t) for t in req[1]]
            return self._scored(ids, len(req[0]), len(ids), by_position=True)

        return list(self._pool.map(one, requests))

    def _scored(self, prompt: Any, start: int, end: int, by_position: bool = False) -> tuple[float, bool]:
        params = {
            "model": self.model,
            "prompt": prompt,
            "max_tokens": 1,
            "echo": True,
            "logprobs": 1,
            "temperature": 0.0,
        }
        lp = self._request(self._post_completion, params, 1)[0].logprobs
        if lp is None or not lp.token_logprobs:
            raise RequestFailed("malformed", "no log-probabilities in the answer")
        where = range(len(lp.token_logprobs)) if by_position else lp.text_offset
        total, greedy = 0.0, True
        for i, (pos, value) in enumerate(zip(where, lp.token_logprobs, strict=False)):
            if start <= pos < end and value is not None:
                total += float(value)
                top = (lp.top_logprobs or [None] * (i + 1))[i] or {}
                greedy = greedy and all(float(value) >= float(v) - 1e-6 for v in top.values())
        return total, greedy

    # ----------------------------------------------------------------------------- token ids
    def encode(self, text: str) -> list[int]:
        """Text to ids through the server's `/tokenize` (no special tokens)."""
        return [
            int(t)
            for t in self._root("/tokenize", {"model": self.model, "prompt": text, "add_special_tokens": False})[
                "tokens"
            ]
        ]

    def decode(self, ids: Sequence[int]) -> str:
        """Ids to text through the server's `/detokenize`."""
        return str(self._root("/detokenize", {"model": self.model, "tokens": [int(t) for t in ids]})["prompt"])

    def chat_prompt(self, messages: Sequence[Mapping[str, str]]) -> list[int]:
        """The ids of `messages` in the server's chat template, ending with the generation prompt."""
        body = {"model": self.model, "messages": [dict(m) for m in messages], "add_generation_prompt": True}
        return [int(t) for t in self._root("/tokenize", body)["tokens"]]

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
        """`num_samples` continuations (ids, stop token excluded) of a token-id prompt (TOKENS)."""
        self._need(TOKENS)
        extra: dict[str, Any] = {"return_token_ids": True}
        if stop_tokens:
            extra["stop_token_ids"] = [int(t) for t in stop_tokens]
        params = dict(
            self._sampling(max_new_tokens, temperature, top_p, seed, ()),
            prompt=[int(t) for t in prefix_ids],
            **extra,
        )
        stops = set(stop_tokens or ())
        if num_samples == 1 or self.features["n"]:
            choices = self._request(self._post_completion, dict(params, n=num_samples), num_samples)
        else:
            calls = [dict(params, seed=seed + j) for j in range(num_samples)]
            choices = [
                c for cs in self._pool.map(lambda p: self._request(self._post_completion, p, 1), calls) for c in cs
            ]
        out = []
        for choice in choices:
            ids = [int(t) for t in _require_token_ids_of(choice)]
            out.append(ids[:-1] if ids and ids[-1] in stops else ids)
        return out

    def _root(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST to a route at the server's root (vLLM serves /tokenize beside /v1, not under it)."""
        root = self.base_url[: -len("/v1")] if self.base_url.endswith("/v1") else self.base_url
        got = self._request(lambda **b: _Listed(self._client.post(root + path, body=b, cast_to=object)), body, 1)
        if not isinstance(got[0], dict):
            raise RequestFailed("malformed", f"{path} answered {type(got[0]).__name__}")
        return got[0]

    def _need(self, capability: str) -> None:
        if capability not in self.capabilities:
            raise SynthError(
                f"backend openai ({self.base_url}) lacks the {capability} capability (the probe found: "
                f"{', '.join(k for k, v in self.features.items() if v)}); use a server that offers it"
            )


class _Listed:
    """A raw JSON answer shaped like a one-choice response, so `_request` checks it like the others."""

    def __init__(self, payload: Any):
        self.choices, self.usage = [payload], None


def _require_token_ids_of(choice: Any) -> list[int]:
    ids = getattr(choice, "token_ids", None)
    if ids is None and isinstance(getattr(choice, "model_extra", None), dict):
        ids = choice.model_extra.get("token_ids")
    if not isinstance(ids, list):
        raise RequestFailed("malformed", "the answer holds no token_ids; the server must support return_token_ids")
    return ids


def _require_token_ids(resp: Any) -> Any:
    _require_token_ids_of(resp.choices[0])
    return resp


def _cut(texts: list[str], stop: Sequence[str]) -> list[str]:
    """Cut each text before the first stop string (servers usually do; some echo it)."""
    out = []
    for text in texts:
        cuts = [text.find(s) for s in stop if s and s in text]
        out.append(text[: min(cuts)] if cuts else text)
    return out


def _api_key(variable: str | None) -> str:
    if variable is None:
        return "EMPTY"  # local servers (vLLM, llama.cpp) accept any key
    key = os.environ.get(variable)
    if not key:
        raise SynthError(
            f"backend openai: environment variable {variable} (policy.api_key_env) is not set; "
            f"export it with the API key"
        )
    return key


def _import_openai() -> Any:
    try:
        import openai
    except ImportError:
        raise SynthError("backend openai needs the openai client: pip install 'phijax[synth]'") from None
    return openai


def make_openai_policy(*, mesh: Any = None, **options: Any) -> OpenAIPolicy:
    """`BackendFactory` of `openai`: `mesh` is ignored (the model lives on the server)."""
    known = {"base_url", "model", "api_key_env", "concurrency", "timeout_s", "max_retries", "probe"}
    unknown = sorted(set(options) - known)
    if unknown:
        raise SynthError(f"backend openai: unknown option policy.{unknown[0]} (options: {', '.join(sorted(known))})")
    for required in ("base_url", "model"):
        if not options.get(required):
            raise SynthError(f"backend openai: policy.{required} is required; add it to the config")
    return OpenAIPolicy(**options)


@hookimpl
def phijax_register_backends(register) -> None:
    register("openai", make_openai_policy)


__all__ = ["OpenAIPolicy", "make_openai_policy"]

"""Test doubles for synthetic data: a deterministic fake policy and a fake OpenAI-compatible server.

`FakePolicy(respond)` answers `generate` with `respond(prompt, sample_index, seed)`: the control flow
of every generator is tested with it. `FakeServer(respond)` is a stdlib HTTP server on 127.0.0.1 (an
ephemeral port, a daemon thread per connection) speaking the parts of the OpenAI API the `openai`
backend uses, plus vLLM's `/tokenize` and `/detokenize`; `faults` (consumed one per generation request)
inject timeouts, 500s, 429s with Retry-After, malformed JSON, dropped connections and wrong choice counts.
Its tokenizer is bytes: token id = byte value. Used by the tests and by `tools/bench_synth.py`.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from phijax.plugins.protocols import GENERATE

Respond = Callable[[str, int, int], str]
"""`respond(prompt, sample_index, seed) -> completion text`."""


def echo(prompt: str, sample_index: int, seed: int) -> str:
    """The default model: repeats the prompt's last line with the sample index."""
    return f"{prompt.strip().splitlines()[-1] if prompt.strip() else ''} #{sample_index}"


class FakePolicy:
    """A deterministic `TextPolicy`: `respond` answers each prompt; every call is kept in `calls`."""

    def __init__(
        self, respond: Respond = echo, *, name: str = "fake:model", capabilities: frozenset[str] = frozenset({GENERATE})
    ):
        self.respond, self.name, self.capabilities = respond, name, capabilities
        self.calls: list[tuple[str, int]] = []  # (prompt, seed) per prompt asked
        self._lock = threading.Lock()

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
        with self._lock:
            self.calls.extend((p, seed) for p in prompts)
        return [[self.respond(p, j, seed) for j in range(num_samples)] for p in prompts]


class FakeServer:
    """A fake OpenAI-compatible server on loopback; `with FakeServer(...) as server: server.base_url`."""

    def __init__(
        self,
        respond: Respond = echo,
        *,
        latency_s: float = 0.0,
        chat: bool = True,
        completions: bool = True,
        n: bool = True,
        token_ids: bool = True,
        logprobs: bool = True,
        models: Sequence[str] = ("fake-model",),
        retry_after: str = "0.05",
        hang_s: float = 1.0,
    ):
        self.respond, self.latency_s, self.models = respond, latency_s, list(models)
        self.features = {"chat": chat, "completions": completions, "n": n, "token_ids": token_ids, "logprobs": logprobs}
        self.retry_after, self.hang_s = retry_after, hang_s
        self.faults: list[str] = []
        self.hits: Counter[str] = Counter()
        self.bodies: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.lock = threading.Lock()
        self.in_flight = self.max_in_flight = 0
        self._httpd: ThreadingHTTPServer | None = None

    @property
    def base_url(self) -> str:
        assert self._httpd is not None, "start the server first"
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def start(self) -> FakeServer:
        handler = type("Handler", (_Handler,), {"server_state": self})
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> FakeServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def next_fault(self) -> str | None:
        with self.lock:
            return self.faults.pop(0) if self.faults else None


def _tokens(text: str) -> list[int]:
    return list(text.encode())


def _text(ids: Sequence[int]) -> str:
    return bytes(int(i) % 256 for i in ids).decode(errors="replace")


class _Handler(BaseHTTPRequestHandler):
    """Requests of one connection; `server_state` is the `FakeServer` (set on a subclass per server)."""

    server_state: FakeServer
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms Nagle + delayed-ACK wait

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet tests
        pass

    def _send(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        try:
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _error(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        self._send(status, {"error": {"message": message, "type": "fake", "code": status}}, headers)

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        state = self.server_state
        state.hits[self.path] += 1
        if self.path.rstrip("/") == "/v1/models":
            self._send(
                200,
                {
                    "object": "list",
                    "data": [{"id": m, "object": "model", "created": 0, "owned_by": "fake"} for m in state.models],
                },
            )
        else:
            self._error(404, f"no route {self.path}")

    def do_POST(self) -> None:  # noqa: N802
        state = self.server_state
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        with state.lock:
            state.hits[self.path] += 1
            state.bodies.append(body)
            state.headers.append(dict(self.headers))
        route = {
            "/v1/chat/completions": self._chat,
            "/v1/completions": self._completions,
            "/tokenize": self._tokenize,
            "/detokenize": self._detokenize,
        }.get(self.path)
        if route is None:
            return self._error(404, f"no route {self.path}")
        if not self.path.startswith("/v1/"):
            return route(body)
        with state.lock:
            state.in_flight += 1
            state.max_in_flight = max(state.max_in_flight, state.in_flight)
        try:
            if not self._fault(body):
                route(body)
        finally:
            with state.lock:
                state.in_flight -= 1

    def _fault(self, body: dict[str, Any]) -> bool:
        """Apply the next fault, if any; True when the request has been answered (or dropped)."""
        state = self.server_state
        fault = state.next_fault()
        if state.latency_s:
            time.sleep(state.latency_s)
        if fault in (None, "wrong_n"):
            self._wrong_n = fault == "wrong_n"
            return False
        if fault == "timeout":
            time.sleep(state.hang_s)
            self._error(504, "too late")
        elif fault == "drop":
            self.close_connection = True
            self.connection.close()
        elif fault == "malformed":
            self._send(200, b'{"id": "x", "choices": [ {"index": 0, "mess')
        elif fault == "429":
            self._error(429, "slow down", {"Retry-After": state.retry_after})
        else:
            self._error(int(fault), f"fault {fault}")
        return True

    def _n(self, body: dict[str, Any]) -> int | None:
        n = int(body.get("n") or 1)
        if n > 1 and not self.server_state.features["n"]:
            self._error(400, "n > 1 is not supported")
            return None
        return n + 1 if getattr(self, "_wrong_n", False) else n

    def _chat(self, body: dict[str, Any]) -> None:
        if not self.server_state.features["chat"]:
            return self._error(404, "no chat endpoint")
        prompt = body["messages"][-1]["content"]
        n = self._n(body)
        if n is None:
            return
        texts = [self.server_state.respond(prompt, j, int(body.get("seed") or 0)) for j in range(n)]
        choices = [
            {"index": j, "message": {"role": "assistant", "content": t}, "finish_reason": "stop"}
            for j, t in enumerate(texts)
        ]
        self._send(
            200,
            {
                "id": "chat-1",
                "object": "chat.completion",
                "created": 0,
                "model": body["model"],
                "choices": choices,
                "usage": _usage(prompt, texts),
            },
        )

    def _completions(self, body: dict[str, Any]) -> None:
        f = self.server_state.features
        prompt = body["prompt"]
        ids = isinstance(prompt, list)
        if (
            not f["completions"]
            or (ids and not f["token_ids"])
            or (body.get("logprobs") is not None and not f["logprobs"])
        ):
            return self._error(404 if not f["completions"] else 400, "not supported")
        text = _text(prompt) if ids else prompt
        n = self._n(body)
        if n is None:
            return
        outs = [
            self.server_state.respond(text, j, int(body.get("seed") or 0))[: body.get("max_tokens") or None]
            for j in range(n)
        ]
        choices = []
        for j, out in enumerate(outs):
            shown = (text if body.get("echo") else "") + out
            choice: dict[str, Any] = {"index": j, "text": shown, "finish_reason": "stop", "logprobs": None}
            if body.get("logprobs") is not None:
                toks = [chr(b) for b in shown.encode()]
                choice["logprobs"] = {
                    "tokens": toks,
                    "token_logprobs": [-0.5] * len(toks),
                    "top_logprobs": [{t: -0.5} for t in toks],
                    "text_offset": list(range(len(toks))),
                }
            if body.get("return_token_ids") and f["token_ids"]:
                choice["token_ids"] = _tokens(out)
                choice["prompt_token_ids"] = _tokens(text)
            choices.append(choice)
        self._send(
            200,
            {
                "id": "cmpl-1",
                "object": "text_completion",
                "created": 0,
                "model": body["model"],
                "choices": choices,
                "usage": _usage(text, outs),
            },
        )

    def _tokenize(self, body: dict[str, Any]) -> None:
        if not self.server_state.features["token_ids"]:
            return self._error(404, "no tokenizer endpoint")
        if "messages" in body:
            text = "".join(f"<|{m['role']}|>{m['content']}<|end|>" for m in body["messages"]) + "<|assistant|>"
        else:
            text = body["prompt"]
        self._send(200, {"tokens": _tokens(text), "count": len(_tokens(text)), "max_model_len": 4096})

    def _detokenize(self, body: dict[str, Any]) -> None:
        self._send(200, {"prompt": _text(body["tokens"])})


def _usage(prompt: str, texts: Sequence[str]) -> dict[str, int]:
    completion = sum(len(t.encode()) for t in texts)
    return {
        "prompt_tokens": len(prompt.encode()),
        "completion_tokens": completion,
        "total_tokens": len(prompt.encode()) + completion,
    }

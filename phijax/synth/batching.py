"""Merging the prompts of concurrent seeds into one `generate` call: how a local model sees a batch.

The stage runner prompts the policy from many threads, a few prompts at a time. A local backend is
fastest when one call fills its KV-cache sampler with many prompts, so `BatchingPolicy` queues the calls,
and one thread sends each run of calls with the same sampling parameters (up to `max_batch` prompts,
waiting at most `wait_s` for more) as one call. With temperature > 0 a sample then depends on its batch
and on the first caller's seed; the request cache keeps re-runs identical anyway.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Sequence
from concurrent.futures import Future
from typing import Any


class BatchingPolicy:
    """A `TextPolicy` whose `generate` calls from many threads are merged into batched calls of `policy`."""

    def __init__(self, policy: Any, *, max_batch: int = 16, wait_s: float = 0.02):
        self.policy, self.max_batch, self.wait_s = policy, max_batch, wait_s
        self.name, self.capabilities = policy.name, policy.capabilities
        self.batches: list[int] = []  # prompts per call sent, for tests and benchmarks
        self._queue: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._serve, name="synth-batcher", daemon=True)
        self._thread.start()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.policy, name)

    def generate(self, prompts: Sequence[str], **params: Any) -> list[list[str]]:
        """As `TextPolicy.generate`; blocks until the batch holding these prompts is done."""
        fut: Future = Future()
        self._queue.put((_params_key(params), list(prompts), params, fut))
        return fut.result()

    def _serve(self) -> None:
        held: list = []
        while True:
            first = held.pop(0) if held else self._queue.get()
            batch, size = [first], len(first[1])
            while size < self.max_batch:
                try:
                    item = self._queue.get(timeout=self.wait_s)
                except queue.Empty:
                    break
                if item[0] == first[0]:
                    batch.append(item)
                    size += len(item[1])
                else:
                    held.append(item)
            self._send(batch)

    def _send(self, batch: list) -> None:
        prompts = [p for _, ps, _, _ in batch for p in ps]
        try:
            results = self.policy.generate(prompts, **batch[0][2])
        except Exception as err:  # noqa: BLE001 - isolate the failing call: each caller asks alone
            if len(batch) == 1:
                batch[0][3].set_exception(err)
                return
            for item in batch:
                self._send([item])
            return
        self.batches.append(len(prompts))
        start = 0
        for _, ps, _, fut in batch:
            fut.set_result(results[start : start + len(ps)])
            start += len(ps)


def _params_key(params: dict[str, Any]) -> tuple:
    return tuple(sorted((k, tuple(v) if isinstance(v, (list, tuple)) else v) for k, v in params.items() if k != "seed"))

"""The request cache: a re-run never pays for a completion twice, and a killed run resumes for free.

Content-addressed: the key of one completion is the sha256 of (backend, model, prompt, sampling
parameters, seed, sample index), so any change to any of them is a miss and nothing else is. Stored as
append-only JSONL under one folder, one file per writer (process × cache object): each entry is one
`os.write` of one line to an `O_APPEND` file, so concurrent writers never interleave, and a torn last
line (a writer killed mid-write) fails to parse and is skipped, never fatal. Reading loads every file.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def request_key(backend: str, prompt: str, params: dict[str, Any], seed: int, sample_index: int) -> str:
    """The cache key of sample `sample_index` of `prompt` under `params` (sampling) and `seed`.

    `backend` names the backend and model (a policy's `name`, e.g. `openai:qwen-7b`).
    """
    blob = json.dumps([backend, prompt, params, int(seed), int(sample_index)], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()


class RequestCache:
    """Completions by key, loaded from `folder/*.jsonl` and appended to this writer's own file."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.torn = 0  # lines skipped while loading: torn tails of killed writers
        self._entries: dict[str, str] = {}
        self._lock = threading.Lock()
        for path in sorted(self.folder.glob("*.jsonl")):
            self._load(path)
        self._path = self.folder / f"{os.getpid()}-{uuid.uuid4().hex[:8]}.jsonl"
        self._fd: int | None = None

    def _load(self, path: Path) -> None:
        with open(path, "rb") as f:
            for line in f:
                try:
                    entry = json.loads(line) if line.endswith(b"\n") else None
                    self._entries[entry["k"]] = entry["v"]
                except (ValueError, TypeError, KeyError):
                    self.torn += 1

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str) -> str | None:
        """The stored completion, or None."""
        return self._entries.get(key)

    def put(self, key: str, value: str) -> None:
        """Store and append one entry (one write of one line, so it is whole or torn, never interleaved)."""
        line = (json.dumps({"k": key, "v": value}, ensure_ascii=False) + "\n").encode()
        with self._lock:
            if self._fd is None:
                self._fd = os.open(self._path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            os.write(self._fd, line)
            self._entries[key] = value

    def close(self) -> None:
        """Close this writer's file."""
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None


@dataclass
class CacheStats:
    """What a policy wrapped in the cache did: prompts sent, samples served from disk, tokens spent."""

    requests: int = 0
    cache_hits: int = 0
    tokens: int = 0


class CachedPolicy:
    """A `TextPolicy` whose `generate` answers from the cache and asks the wrapped policy only for misses.

    Thread-safe; every other attribute (`encode`, `complete`, ...) is the wrapped policy's.
    """

    def __init__(self, policy: Any, cache: RequestCache):
        self.policy, self.cache = policy, cache
        self.name: str = policy.name
        self.capabilities: frozenset[str] = policy.capabilities
        self.stats = CacheStats()
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.policy, name)

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
        """As `TextPolicy.generate`; a prompt with any sample missing is sent again (all its samples)."""
        params = {
            "max_new_tokens": max_new_tokens,
            "temperature": temperature,
            "top_p": top_p,
            "num_samples": num_samples,
            "stop": list(stop),
            "chat": chat,
        }
        keys = [[request_key(self.name, p, params, seed, j) for j in range(num_samples)] for p in prompts]
        found = [[self.cache.get(k) for k in row] for row in keys]
        missing = [i for i, row in enumerate(found) if any(v is None for v in row)]
        if missing:
            fresh = self.policy.generate(
                [prompts[i] for i in missing],
                max_new_tokens=max_new_tokens,
                temperature=temperature,
                top_p=top_p,
                num_samples=num_samples,
                stop=stop,
                seed=seed,
                chat=chat,
            )
            for i, texts in zip(missing, fresh, strict=True):
                for j, text in enumerate(texts):
                    if found[i][j] is None:
                        self.cache.put(keys[i][j], text)
                        found[i][j] = text
        with self._lock:
            self.stats.requests += len(missing)
            self.stats.cache_hits += sum(num_samples for i in range(len(prompts)) if i not in set(missing))
        return found  # type: ignore[return-value]

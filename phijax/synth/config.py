"""The `phijax synth` job: the backend to prompt, and the stages that turn seeds into training records.

Pure: no jax, no network. `phijax config keys synth` prints every key below with its description.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from phijax.parallel.config import MeshConfig


@dataclass(frozen=True)
class BackendSpec:
    """The model generators prompt (`policy:`): a registered backend and its options.

    E.g. `{backend: openai, base_url: http://127.0.0.1:8000/v1, model: m, api_key_env: KEY, concurrency: 16}`
    or `{backend: local, checkpoint: runs/tiny-sft}`; every key but `backend` goes to the backend factory.
    """

    backend: str = field(default="local", metadata={"help": "registered backend (`phijax plugins` lists them)"})
    options: dict[str, Any] = field(
        default_factory=dict, metadata={"rest": True, "help": "other keys: the backend factory's options"}
    )


@dataclass(frozen=True)
class StageSpec:
    """One entry of `synth.stages`: a generator run over seed records, writing JSONL shards to `output`.

    Keys other than those below are the generator's options (e.g. `threshold`, `templates`).
    """

    generator: str = field(metadata={"help": "registered synthetic generator (`phijax plugins` lists them)"})
    input: str = field(
        metadata={"help": "seed records: a JSONL file, a glob, or a directory (its *.jsonl), e.g. an earlier output"}
    )
    output: str = field(metadata={"help": "directory of this stage's JSONL shards (and its _synth/ state)"})
    name: str | None = field(default=None, metadata={"help": "the stage's name in logs and ids (null: output's name)"})
    limit: int | None = field(default=None, metadata={"help": "read at most this many seed records (null: all)"})
    max_failures: int | None = field(
        default=None, metadata={"help": "failed seeds tolerated before the stage stops (null: synth.max_failures)"}
    )
    options: dict[str, Any] = field(
        default_factory=dict, metadata={"rest": True, "help": "other keys: the generator factory's options"}
    )


@dataclass(frozen=True)
class SynthConfig:
    """How stages run: in order, seeds in parallel, every request cached, resumable after a kill."""

    stages: tuple[StageSpec, ...] = field(default=(), metadata={"help": "the steps, run in order (see StageSpec)"})
    cache_dir: str = field(
        default="runs/synth-cache", metadata={"help": "request cache folder, shared by runs and stages"}
    )
    seed: int = field(default=0, metadata={"help": "run seed; each seed record's seed derives from it and its id"})
    concurrency: int = field(default=16, metadata={"help": "seed records processed at once (threads)"})
    max_failures: int = field(
        default=0, metadata={"help": "failed seeds (requests failed after retries) tolerated per stage before it stops"}
    )
    shard_records: int = field(default=10000, metadata={"help": "records per output shard before a new one starts"})
    progress: bool = field(default=True, metadata={"help": "show a progress line on stderr (records/s, acceptance)"})


@dataclass(frozen=True)
class SynthJob:
    """`phijax synth`: generators over a backend, as stages (cached, resumable, with provenance)."""

    policy: BackendSpec = field(default_factory=BackendSpec, metadata={"help": "the backend generators prompt"})
    mesh: MeshConfig = field(default_factory=MeshConfig, metadata={"help": "device mesh of a local backend"})
    synth: SynthConfig = field(default_factory=SynthConfig, metadata={"help": "the stages and how they run"})

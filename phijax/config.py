"""The run configuration: frozen dataclasses, loaded from YAML files plus dotted overrides.

A run is described by one `Config`. It is built from any number of YAML files (later files override
earlier ones, key by key) and then `section.key=value` overrides from the command line, whose values
are parsed as YAML (`train.steps=30`, `data.sources=[{name: a, source: jsonl, paths: [x]}]`).
Every key is checked against the schema below; an unknown key, a value of the wrong type or a missing
required value raises `ConfigError` with one line that names the key, where it came from, and the
closest valid key.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping, Sequence

import yaml

from phijax.errors import ConfigError

COMMAND_LINE = "command line"


# ----------------------------------------------------------------------------------------- schema
@dataclass(frozen=True)
class ModelConfig:
    """Architecture and numerics of the decoder. Defaults are microsoft/phi-4 (see PHI4.md).

    `preset` names a set of architecture values from `phijax.model.presets`; keys written next to
    it override the preset's values.
    """

    preset: str | None = None
    vocab_size: int = 100_352
    hidden_size: int = 5120
    num_layers: int = 40
    num_heads: int = 40
    num_kv_heads: int = 10
    head_dim: int = 128
    intermediate_size: int = 17_920
    rms_norm_eps: float = 1e-5
    rope_theta: float = 10_000.0
    max_seq_len: int = 16_384
    bos_token_id: int = 100_257
    eos_token_id: int = 100_265
    pad_token_id: int = 100_349
    param_dtype: Literal["float32", "bfloat16"] = "float32"
    compute_dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    # "xla" is the portable path (CPU, GPU, TPU); "cudnn" asks jax for cuDNN flash attention on GPU;
    # "splash" is the Pallas flash-attention kernel for training on TPU (sequence length a multiple
    # of 128; interpreted, slowly, elsewhere). Generation always uses jax's own choice.
    attention: Literal["xla", "cudnn", "splash"] = "xla"
    # Which activations a layer keeps for the backward pass; see phijax.model.phi4.REMAT_POLICIES.
    remat: Literal["none", "full", "dots", "dots_no_batch"] = "none"
    scan_layers: bool = True

    def __post_init__(self) -> None:
        if self.num_heads % self.num_kv_heads:
            raise ConfigError(
                f"model.num_heads ({self.num_heads}) must be a multiple of model.num_kv_heads "
                f"({self.num_kv_heads}); pick num_kv_heads from its divisors"
            )
        if self.head_dim % 2:
            raise ConfigError(f"model.head_dim ({self.head_dim}) must be even for RoPE")


@dataclass(frozen=True)
class MeshConfig:
    """Device mesh sizes (-1: all devices left over) and the logical-axis → mesh-axis rules."""

    data: int = 1
    fsdp: int = -1
    tensor: int = 1
    # On a host with no accelerator, split the CPU into this many XLA devices (a CPU mesh for tests
    # and laptops). Applied only if the process has not set --xla_force_host_platform_device_count.
    cpu_devices: int | None = None
    rules: dict[str, Any] = field(
        default_factory=lambda: {
            "batch": ["data", "fsdp"],
            "embed": "fsdp",
            "vocab": "tensor",
            "heads": "tensor",
            "kv_heads": "tensor",
            "mlp": "tensor",
            "head_dim": None,
            "norm": None,
            "layers": None,
            "length": None,
        }
    )


@dataclass(frozen=True)
class SourceSpec:
    """One entry of `data.sources`: a named component of the mixture.

    Keys other than the four below are passed to the source factory as keyword arguments.
    """

    name: str
    source: str
    weight: float = 1.0
    epochs: float | None = None
    options: dict[str, Any] = field(default_factory=dict, metadata={"rest": True})


@dataclass(frozen=True)
class DataConfig:
    """Where training text comes from and how it is tokenized (see `phijax.data.pipeline`).

    `tokenizer`: `phi4`, a `.tiktoken` file, a `tokenizer.json` or a HF checkpoint directory.
    `on_epoch_cap`: when a source reaches its `epochs`, `stop` the data or `renormalize` the
    remaining weights. `strict`: a bad record is an error instead of skipped and counted.
    `add_bos`: start every document with the BOS token. `packing`: `split` fills every row, cutting
    documents at row ends; `pad` starts a document that does not fit in a new row (for chat data).
    """

    sources: tuple[SourceSpec, ...] = ()
    tokenizer: str = "phi4"
    strict: bool = False
    seed: int = 0
    on_epoch_cap: Literal["stop", "renormalize"] = "renormalize"
    add_bos: bool = False
    packing: Literal["split", "pad"] = "split"


@dataclass(frozen=True)
class OptimConfig:
    """AdamW with linear warm-up then linear decay (Phi-4 pretraining: peak 3e-4, wd 0.1)."""

    peak_lr: float = 3e-4
    end_lr_ratio: float = 0.0
    warmup_steps: int = 0
    weight_decay: float = 0.1
    b1: float = 0.9
    b2: float = 0.95
    eps: float = 1e-8
    clip_grad_norm: float = 1.0


@dataclass(frozen=True)
class TrainConfig:
    """Length and shape of the run. `global_batch` counts sequences of `seq_len` tokens."""

    stage: Literal["pretrain", "midtrain", "sft", "dpo"] = "pretrain"
    steps: int = 100
    global_batch: int = 8
    seq_len: int = 4096
    grad_accum: int = 1
    log_every: int = 1
    seed: int = 0
    # Sequence positions per chunk of the LM-head loss: bounds live fp32 logits to batch·chunk·vocab.
    loss_chunk: int = 1024
    # Metric sinks by registered name (phijax_register_metric_loggers); jsonl writes metrics.jsonl.
    metric_loggers: tuple[str, ...] = ("jsonl",)
    # Peak dense TFLOP/s of one device for MFU; null = phijax.train.metrics.PEAK_TFLOPS by device kind.
    peak_tflops: float | None = None


@dataclass(frozen=True)
class CheckpointConfig:
    """When to save, how many to keep, and what to start from."""

    every: int = 1000
    keep: int = 3
    async_save: bool = True
    init_from: str | None = None


@dataclass(frozen=True)
class DPOConfig:
    """Direct preference optimisation (`train.stage: dpo`): the pairs and the loss.

    `pairs`: JSONL files (globs) of preference pairs, whole responses `{prompt, chosen, rejected}` as
    text or ids, or Pivotal Token Search single-token pairs (see `phijax.data.pairs`).
    `reference`: `precompute` scores every pair once with the initial parameters before training
    (no second model in memory); `frozen` keeps a frozen copy of them and scores each batch.
    `loss_type`: `sigmoid` (DPO) or `ipo`; `label_smoothing` applies to sigmoid only.
    """

    pairs: tuple[str, ...] = ()
    beta: float = 0.1
    label_smoothing: float = 0.0
    loss_type: Literal["sigmoid", "ipo"] = "sigmoid"
    reference: Literal["precompute", "frozen"] = "precompute"
    shuffle: bool = True


@dataclass(frozen=True)
class CurriculumProblemsConfig:
    """PTS problems drawn from the embedded arithmetic curriculum (`phijax.data.curriculum`).

    Problem i of curriculum `seed`, for i = 0, 1, ..., keeping those of `kinds` whose operands have
    at most `max_digits` digits (null: any), until `count` are kept. Use a seed the model was not
    trained on (the tiny pretraining reads seed 0).
    """

    count: int = 100
    seed: int = 1
    kinds: tuple[str, ...] = ("addition", "subtraction", "multiplication")
    max_digits: int | None = None


@dataclass(frozen=True)
class PTSConfig:
    """`phijax pts`: sample solutions, find pivotal tokens, write single-token DPO pairs.

    `checkpoint`: model dir, checkpoint step or run dir (newest step). `problems`: JSONL with `query`
    plus what the verifier reads (`answer` or `tests`); null draws `curriculum` problems instead.
    `prompt_format`: `chat` (the chat template, for SFT models) or `text` (the curriculum's textbook
    form `Exercise. {query}\n\nSolution.`, for pretrained ones). `rollouts`, `max_new_tokens` and
    `temperature` are passed to the estimator as `num_rollouts`, `max_new_tokens`, `temperature`,
    plus `estimator_options`. `solutions`: solutions searched per query in the success `band`.
    `output`: the pairs JSONL; its summary goes next to it as `<stem>.summary.json`.
    """

    checkpoint: str | None = None
    tokenizer: str | None = None
    problems: str | None = None
    curriculum: CurriculumProblemsConfig = field(default_factory=CurriculumProblemsConfig)
    prompt_format: Literal["chat", "text"] = "chat"
    estimator: str = "monte_carlo"
    estimator_options: dict[str, Any] = field(default_factory=dict)
    verifier: str = "math_answer"
    verifier_options: dict[str, Any] = field(default_factory=dict)
    rollouts: int = 64
    p_gap: float = 0.2
    band: tuple[float, ...] = (0.2, 0.8)
    solutions: int = 4
    max_new_tokens: int = 1024
    temperature: float = 1.0
    output: str = "runs/pts/pairs.jsonl"
    seed: int = 0


@dataclass(frozen=True)
class Config:
    """Everything a run needs; written resolved to `run_dir/config.yaml`."""

    run_dir: str = "runs/default"
    model: ModelConfig = field(default_factory=ModelConfig)
    mesh: MeshConfig = field(default_factory=MeshConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    dpo: DPOConfig = field(default_factory=DPOConfig)
    pts: PTSConfig = field(default_factory=PTSConfig)

    def __post_init__(self) -> None:
        if self.model.attention == "splash" and self.train.seq_len % 128:
            raise ConfigError(f"model.attention=splash tiles sequences in blocks of 128 tokens, but train.seq_len "
                              f"is {self.train.seq_len}; use a multiple of 128 or model.attention=xla")


# ------------------------------------------------------------------------------------- loading
def load_config(files: Sequence[str | Path] = (), overrides: Sequence[str] = ()) -> Config:
    """Build a `Config` from YAML files (later wins) and `key.sub=value` overrides (last wins)."""
    raw: dict[str, Any] = {}
    origins: dict[str, str] = {}
    for path in files:
        _merge(raw, _read_yaml(Path(path)), str(path), origins)
    for text in overrides:
        key, value = parse_override(text)
        _merge(raw, _nest(key, value), COMMAND_LINE, origins)
    return config_from_dict(raw, origins)


def config_from_dict(raw: Mapping[str, Any], origins: Mapping[str, str] | None = None) -> Config:
    """Validate a nested dict against the schema; `origins` maps dotted keys to where they came from."""
    raw = _apply_model_preset(dict(raw), origins or {})
    return _build(Config, raw, "", origins or {})


def parse_override(text: str) -> tuple[str, Any]:
    """Split `a.b=value` into (`a.b`, YAML-parsed value)."""
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not key or any(not part.isidentifier() for part in key.split(".")):
        raise ConfigError(
            f"bad override {text!r}: write overrides as key.sub=value, for example train.steps=30"
        )
    try:
        return key, yaml.safe_load(value) if value.strip() else None
    except yaml.YAMLError as err:
        reason = str(err).splitlines()[0]
        raise ConfigError(f"override {key}: value {value!r} is not valid YAML ({reason})") from None


def to_dict(cfg: Any) -> Any:
    """The config as plain YAML-able data (tuples become lists; rest-fields are inlined)."""
    if dataclasses.is_dataclass(cfg):
        out: dict[str, Any] = {}
        for f in dataclasses.fields(cfg):
            value = to_dict(getattr(cfg, f.name))
            if f.metadata.get("rest"):
                out.update(value)
            else:
                out[f.name] = value
        return out
    if isinstance(cfg, (list, tuple)):
        return [to_dict(v) for v in cfg]
    if isinstance(cfg, dict):
        return {k: to_dict(v) for k, v in cfg.items()}
    return cfg


def dump_config(cfg: Config) -> str:
    """The resolved config as YAML text, loadable again with `load_config`."""
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)


def write_config(cfg: Config, run_dir: str | Path) -> Path:
    """Write the resolved config to `run_dir/config.yaml` and return its path."""
    path = Path(run_dir) / "config.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(dump_config(cfg))
    return path


def valid_keys(cls: type = Config, prefix: str = "") -> list[str]:
    """Every dotted key the schema accepts (nested dataclasses expanded)."""
    keys = []
    for f in dataclasses.fields(cls):
        dotted = f"{prefix}{f.name}"
        hint = typing.get_type_hints(cls)[f.name]
        keys.append(dotted)
        if dataclasses.is_dataclass(hint):
            keys.extend(valid_keys(hint, dotted + "."))
    return keys


# ------------------------------------------------------------------------------------ internals
def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"config file {path} not found: pass an existing YAML file to --config")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ConfigError(f"config file {where} is not valid YAML: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of sections, not {type(data).__name__}")
    return data


def _nest(dotted: str, value: Any) -> dict[str, Any]:
    out: Any = value
    for part in reversed(dotted.split(".")):
        out = {part: out}
    return out


def _merge(dst: dict[str, Any], src: Mapping[str, Any], origin: str, origins: dict[str, str], prefix: str = "") -> None:
    for key, value in src.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping) and isinstance(dst.get(key), dict):
            _merge(dst[key], value, origin, origins, dotted + ".")
        else:
            dst[key] = _copy(value)
            _record(value, dotted, origin, origins)


def _record(value: Any, dotted: str, origin: str, origins: dict[str, str]) -> None:
    origins[dotted] = origin
    if isinstance(value, Mapping):
        for k, v in value.items():
            _record(v, f"{dotted}.{k}", origin, origins)


def _copy(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


def _origin(dotted: str, origins: Mapping[str, str]) -> str:
    probe = dotted
    while probe:
        if probe in origins:
            return origins[probe]
        parent = re.sub(r"(\.[^.\[]*|\[\d+\])$", "", probe)
        if parent == probe:
            break
        probe = parent
    return "defaults"


def _apply_model_preset(raw: dict[str, Any], origins: Mapping[str, str]) -> dict[str, Any]:
    model = raw.get("model")
    if not isinstance(model, Mapping) or model.get("preset") is None:
        return raw
    from phijax.model.presets import preset_values  # late: keeps config importable without jax

    try:
        base = preset_values(model["preset"])
    except KeyError as err:
        raise ConfigError(f"{err.args[0]} (from {_origin('model.preset', origins)})") from None
    raw["model"] = {**base, **model}
    return raw


def _build(cls: type, raw: Any, prefix: str, origins: Mapping[str, str]) -> Any:
    where = prefix.rstrip(".") or "the config"
    if not isinstance(raw, Mapping):
        raise ConfigError(
            f"{where} (from {_origin(prefix.rstrip('.'), origins)}) must be a mapping of keys, "
            f"got {_describe(raw)}"
        )
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    rest_field = next((f for f in fields.values() if f.metadata.get("rest")), None)
    kwargs: dict[str, Any] = {}
    rest: dict[str, Any] = {}
    for key, value in raw.items():
        dotted = f"{prefix}{key}"
        if key in fields and fields[key] is not rest_field:
            kwargs[key] = _coerce(hints[key], value, dotted, origins)
        elif rest_field is not None:
            rest[key] = value
        else:
            raise ConfigError(_unknown_key_message(str(dotted), origins))
    if rest_field is not None:
        kwargs[rest_field.name] = rest
    missing = [
        name
        for name, f in fields.items()
        if name not in kwargs
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ConfigError(
            f"{prefix}{missing[0]} is required (in {where}, from {_origin(prefix.rstrip('.'), origins)}): "
            f"add `{missing[0]}: ...` there"
        )
    return cls(**kwargs)


def _unknown_key_message(dotted: str, origins: Mapping[str, str]) -> str:
    generic = re.sub(r"\[\d+\]", "", dotted)
    candidates = valid_keys()
    close = difflib.get_close_matches(generic, candidates, n=1, cutoff=0.6)
    if not close:
        section = generic.rpartition(".")[0]
        siblings = [k for k in candidates if k.rpartition(".")[0] == section]
        close = difflib.get_close_matches(generic, siblings, n=1, cutoff=0.0)
    hint = f"; did you mean `{close[0]}`?" if close else ""
    return f"unknown config key `{dotted}` (from {_origin(dotted, origins)}){hint}"


def _coerce(hint: Any, value: Any, dotted: str, origins: Mapping[str, str]) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if hint is Any:
        return value
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, dotted + ".", origins)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(inner[0], value, dotted, origins)
    if origin is Literal:
        if value not in args:
            choices = ", ".join(repr(a) for a in args)
            raise _type_error(dotted, origins, f"one of {choices}", value)
        return value
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise _type_error(dotted, origins, "a list", value)
        return tuple(_coerce(args[0], v, f"{dotted}[{i}]", origins) for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, Mapping):
            raise _type_error(dotted, origins, "a mapping", value)
        return {str(k): _coerce(args[1], v, f"{dotted}.{k}", origins) for k, v in value.items()}
    return _coerce_scalar(hint, value, dotted, origins)


def _coerce_scalar(hint: type, value: Any, dotted: str, origins: Mapping[str, str]) -> Any:
    if hint is bool:
        if isinstance(value, bool):
            return value
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads 3e-4 (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
    elif hint is str:
        if isinstance(value, str):
            return value
    else:
        raise TypeError(f"unsupported config type {hint!r} at {dotted}")
    article = "an" if hint.__name__[0] in "aeiou" else "a"
    raise _type_error(dotted, origins, f"{article} {hint.__name__}", value)


def _type_error(dotted: str, origins: Mapping[str, str], expected: str, value: Any) -> ConfigError:
    return ConfigError(f"config key `{dotted}` (from {_origin(dotted, origins)}) must be {expected}, got {_describe(value)}")


def _describe(value: Any) -> str:
    text = repr(value)
    if len(text) > 40:
        text = text[:37] + "..."
    return f"{text} ({type(value).__name__})"

"""Reading and writing HF `Phi3ForCausalLM` checkpoint directories (config.json + safetensors).

HF fuses q, k, v into `qkv_proj` [(heads + 2·kv_heads)·head_dim, hidden] (q rows first, then k,
then v) and gate, up into `gate_up_proj` [2·intermediate, hidden] (gate first); torch `Linear`
weights are [out, in]. phijax keeps the projections separate and [in, out]-shaped so each can be
sharded on its own axes, and stacks the layers on a leading axis. Conversion is tensor by tensor:
reading holds one copy of the weights (in the file's dtype) plus one tensor in flight.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
from flax import nnx
from safetensors.flax import save_file

from phijax.config.loader import relative_note
from phijax.errors import CheckpointError
from phijax.model.config import ModelConfig
from phijax.model.phi4 import Phi4

SHARD_BYTES = 4 * 2**30  # size of each written safetensors shard
_HF_PREFIX = "model.layers."


# ------------------------------------------------------------------------------------- config
def config_from_hf(hf: dict[str, Any], **overrides: Any) -> ModelConfig:
    """A `ModelConfig` from a HF phi3 `config.json` dict; refuses what phijax does not implement."""
    if hf.get("model_type") != "phi3":
        raise CheckpointError(
            f"config.json has model_type {hf.get('model_type')!r}; phijax reads phi3 (Phi3ForCausalLM) checkpoints"
        )
    rope = hf.get("rope_parameters") or {}
    scaling = hf.get("rope_scaling")
    rope_type = (scaling or {}).get("rope_type", (scaling or {}).get("type")) or rope.get("rope_type", "default")
    if rope_type != "default":
        raise CheckpointError(f"config.json uses rope_type {rope_type!r}; phijax implements plain RoPE only (phi-4's)")
    if float(rope.get("partial_rotary_factor", hf.get("partial_rotary_factor", 1.0))) != 1.0:
        raise CheckpointError("config.json sets partial_rotary_factor != 1; phijax rotates the full head dim (phi-4)")
    if hf.get("tie_word_embeddings"):
        raise CheckpointError("config.json ties word embeddings; phi-4 keeps embed_tokens and lm_head separate")
    if hf.get("sliding_window"):
        raise CheckpointError("config.json sets a sliding_window; phi-4 uses full attention (set it to null)")
    heads = hf["num_attention_heads"]
    values = dict(
        vocab_size=hf["vocab_size"],
        hidden_size=hf["hidden_size"],
        num_layers=hf["num_hidden_layers"],
        num_heads=heads,
        num_kv_heads=hf.get("num_key_value_heads") or heads,
        head_dim=hf.get("head_dim") or hf["hidden_size"] // heads,
        intermediate_size=hf["intermediate_size"],
        rms_norm_eps=hf.get("rms_norm_eps", 1e-5),
        rope_theta=float(rope.get("rope_theta", hf.get("rope_theta", 10_000.0))),
        max_seq_len=hf.get("max_position_embeddings", 4096),
        bos_token_id=_first(hf.get("bos_token_id"), 100_257),
        eos_token_id=_first(hf.get("eos_token_id"), 100_265),
        pad_token_id=_first(hf.get("pad_token_id"), 100_349),
    )
    return ModelConfig(**{**values, **overrides})


def config_to_hf(cfg: ModelConfig, dtype: str) -> dict[str, Any]:
    """The `config.json` dict `transformers` needs to build the same model."""
    return {
        "architectures": ["Phi3ForCausalLM"],
        "model_type": "phi3",
        "vocab_size": cfg.vocab_size,
        "hidden_size": cfg.hidden_size,
        "intermediate_size": cfg.intermediate_size,
        "num_hidden_layers": cfg.num_layers,
        "num_attention_heads": cfg.num_heads,
        "num_key_value_heads": cfg.num_kv_heads,
        "head_dim": cfg.head_dim,
        "hidden_act": "silu",
        "rms_norm_eps": cfg.rms_norm_eps,
        "rope_theta": cfg.rope_theta,
        "rope_scaling": None,
        "partial_rotary_factor": 1.0,
        "max_position_embeddings": cfg.max_seq_len,
        "original_max_position_embeddings": cfg.max_seq_len,
        "sliding_window": None,
        "tie_word_embeddings": False,
        "bos_token_id": cfg.bos_token_id,
        "eos_token_id": cfg.eos_token_id,
        "pad_token_id": cfg.pad_token_id,
        "attention_dropout": 0.0,
        "embd_pdrop": 0.0,
        "resid_pdrop": 0.0,
        "torch_dtype": dtype,
    }


def _first(value: Any, default: int) -> int:
    if isinstance(value, list):
        return value[0] if value else default
    return default if value is None else value


# ------------------------------------------------------------------------ tensor name mapping
def hf_tensors_of_layer(cfg: ModelConfig, layer: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """One decoder layer's phijax arrays → its HF tensors (names relative to the layer)."""
    d = cfg.hidden_size
    qkv = np.concatenate([layer[n].reshape(d, -1).T for n in ("attn.q", "attn.k", "attn.v")], axis=0)
    return {
        "self_attn.qkv_proj.weight": qkv,
        "self_attn.o_proj.weight": layer["attn.o"].reshape(-1, d).T,
        "mlp.gate_up_proj.weight": np.concatenate([layer["mlp.gate"].T, layer["mlp.up"].T], axis=0),
        "mlp.down_proj.weight": layer["mlp.down"].T,
        "input_layernorm.weight": layer["attn_norm.scale"],
        "post_attention_layernorm.weight": layer["mlp_norm.scale"],
    }


def phijax_arrays_of_hf(cfg: ModelConfig, name: str, tensor: np.ndarray) -> dict[str, np.ndarray]:
    """One HF tensor (name relative to its layer) → the phijax arrays it holds."""
    d, h, kv, hd, f = cfg.hidden_size, cfg.num_heads, cfg.num_kv_heads, cfg.head_dim, cfg.intermediate_size
    if name == "self_attn.qkv_proj.weight":
        _expect_shape(name, tensor, ((h + 2 * kv) * hd, d))
        q, k, v = np.split(tensor, [h * hd, (h + kv) * hd], axis=0)
        return {
            "attn.q": q.T.reshape(d, h, hd),
            "attn.k": k.T.reshape(d, kv, hd),
            "attn.v": v.T.reshape(d, kv, hd),
        }
    if name == "self_attn.o_proj.weight":
        _expect_shape(name, tensor, (d, h * hd))
        return {"attn.o": tensor.T.reshape(h, hd, d)}
    if name == "mlp.gate_up_proj.weight":
        _expect_shape(name, tensor, (2 * f, d))
        return {"mlp.gate": tensor[:f].T, "mlp.up": tensor[f:].T}
    if name == "mlp.down_proj.weight":
        _expect_shape(name, tensor, (d, f))
        return {"mlp.down": tensor.T}
    if name in ("input_layernorm.weight", "post_attention_layernorm.weight"):
        _expect_shape(name, tensor, (d,))
        return {("attn_norm.scale" if name.startswith("input") else "mlp_norm.scale"): tensor}
    raise CheckpointError(f"unexpected tensor `{_HF_PREFIX}N.{name}` for Phi3ForCausalLM; is this a phi3 checkpoint?")


def _expect_shape(name: str, tensor: np.ndarray, shape: tuple[int, ...]) -> None:
    if tuple(tensor.shape) != shape:
        raise CheckpointError(f"tensor {name} has shape {tuple(tensor.shape)}, config.json implies {shape}")


# ------------------------------------------------------------------------------------- reading
def read_hf_config(path: str | Path) -> ModelConfig:
    """The `ModelConfig` of a HF checkpoint directory."""
    config_file = Path(path) / "config.json"
    if not Path(path).is_dir():
        raise CheckpointError(f"HF checkpoint {path} not found{relative_note(path)}: pass a Phi3ForCausalLM directory")
    if not config_file.is_file():
        raise CheckpointError(f"{path} has no config.json: pass a HF Phi3ForCausalLM checkpoint directory")
    return config_from_hf(json.loads(config_file.read_text()))


def iter_hf_tensors(path: str | Path) -> Iterator[tuple[str, np.ndarray]]:
    """Every (name, array) of a checkpoint's safetensors shards, as read-only memory-mapped views.

    The `safetensors` package cannot hand bf16 tensors to numpy, and going through a framework
    would copy every tensor; a view over the file's pages costs no memory of its own.
    """
    files = sorted(Path(path).glob("*.safetensors"))
    if not files:
        raise CheckpointError(f"{path} has no *.safetensors files: phijax reads safetensors checkpoints only")
    for file in files:
        header, data_start = _safetensors_header(file)
        data = np.memmap(file, dtype=np.uint8, mode="r")
        for name, info in header.items():
            if name == "__metadata__":
                continue
            if info["dtype"] not in _NUMPY_DTYPES:
                raise CheckpointError(f"{file}: tensor {name} has dtype {info['dtype']}, phijax reads F32/F16/BF16")
            begin, end = (data_start + offset for offset in info["data_offsets"])
            yield name, data[begin:end].view(_NUMPY_DTYPES[info["dtype"]]).reshape(info["shape"])


_NUMPY_DTYPES = {"F32": np.float32, "F16": np.float16, "BF16": ml_dtypes.bfloat16}


def _safetensors_header(file: Path) -> tuple[dict[str, Any], int]:
    """The JSON header of a safetensors file and the byte offset where tensor data starts."""
    with file.open("rb") as handle:
        size = int.from_bytes(handle.read(8), "little")
        try:
            header = json.loads(handle.read(size))
            end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
        except (ValueError, UnicodeDecodeError, KeyError, TypeError, AttributeError):
            raise CheckpointError(
                f"{file} is corrupt or truncated (unreadable safetensors header): download or convert it again"
            ) from None
    have = file.stat().st_size
    if 8 + size + end > have:
        raise CheckpointError(
            f"{file} is corrupt or truncated ({have:,} bytes, its header needs "
            f"{8 + size + end:,}): download or convert it again"
        )
    return header, 8 + size


def read_hf_params(path: str | Path, cfg: ModelConfig) -> dict[str, np.ndarray]:
    """Flat phijax parameter arrays (`layers.attn.q` stacked [layers, ...]) in the file's dtype."""
    flat: dict[str, np.ndarray] = {}
    for name, tensor in iter_hf_tensors(path):
        if name.startswith(_HF_PREFIX):
            index, _, rest = name[len(_HF_PREFIX) :].partition(".")
            for key, array in phijax_arrays_of_hf(cfg, rest, tensor).items():
                stacked = flat.setdefault(f"layers.{key}", np.empty((cfg.num_layers, *array.shape), array.dtype))
                stacked[int(index)] = array
        elif name == "model.embed_tokens.weight":
            _expect_shape(name, tensor, (cfg.vocab_size, cfg.hidden_size))
            flat["embed"] = tensor
        elif name == "lm_head.weight":
            _expect_shape(name, tensor, (cfg.vocab_size, cfg.hidden_size))
            flat["lm_head"] = tensor.T
        elif name == "model.norm.weight":
            flat["final_norm.scale"] = tensor
        else:
            raise CheckpointError(f"unexpected tensor {name} in {path}; is this a Phi3ForCausalLM checkpoint?")
    return flat


def load_hf(path: str | Path, **model_overrides: Any) -> Phi4:
    """Build a `Phi4` from a HF `Phi3ForCausalLM` directory (params cast to `param_dtype`)."""
    cfg = read_hf_config(path)
    cfg = ModelConfig(**{**_fields(cfg), **model_overrides})
    model = nnx.eval_shape(lambda: Phi4(cfg, rngs=nnx.Rngs(0)))
    assign_flat_params(model, read_hf_params(path, cfg))
    return model


def assign_flat_params(model: Phi4, flat: dict[str, np.ndarray]) -> None:
    """Fill a (possibly abstract) model's parameters from flat dotted names, checking coverage."""
    params = nnx.state(model, nnx.Param)
    expected = set()
    for path, var in _named_params(params):
        expected.add(path)
        if path not in flat:
            raise CheckpointError(f"checkpoint lacks parameter {path}; it does not match the model config")
        if tuple(flat[path].shape) != tuple(var.shape):
            raise CheckpointError(f"parameter {path} has shape {flat[path].shape}, model expects {var.shape}")
        var.set_value(jnp.asarray(flat[path], dtype=var.dtype))
    extra = sorted(set(flat) - expected)
    if extra:
        raise CheckpointError(f"checkpoint has parameters the model lacks: {', '.join(extra[:3])}")
    nnx.update(model, params)


def _named_params(params: nnx.State) -> Iterator[tuple[str, nnx.Variable]]:
    leaves = jax.tree_util.tree_leaves_with_path(params, is_leaf=lambda x: isinstance(x, nnx.Variable))
    for path, var in leaves:
        yield ".".join(str(getattr(k, "key", k)) for k in path), var


def _fields(cfg: ModelConfig) -> dict[str, Any]:
    return {f: getattr(cfg, f) for f in cfg.__dataclass_fields__}


# ------------------------------------------------------------------------------------- writing
def save_hf(model: Phi4, path: str | Path, dtype: str | None = None) -> Path:
    """Write `model` as a HF `Phi3ForCausalLM` directory that `transformers` loads.

    dtype: "float32" or "bfloat16" for the saved tensors (default: the model's param_dtype).
    """
    cfg: ModelConfig = model.cfg
    dtype = dtype or cfg.param_dtype
    out = Path(path)
    if out.exists() and any(out.iterdir()):
        raise CheckpointError(f"{out} exists and is not empty: save to a new directory (nothing was overwritten)")
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(config_to_hf(cfg, dtype), indent=2))
    flat = {name: var for name, var in _named_params(nnx.state(model, nnx.Param))}
    _write_shards(out, _iter_hf_out(cfg, flat, jnp.dtype(dtype)))
    return out


def _iter_hf_out(cfg: ModelConfig, flat: dict[str, nnx.Variable], dtype) -> Iterator[tuple[str, np.ndarray]]:
    def host(name: str, index: int | None = None) -> np.ndarray:
        value = flat[name][...] if index is None else flat[name][...][index]
        return np.asarray(jax.device_get(value.astype(dtype)))

    yield "model.embed_tokens.weight", host("embed")
    for i in range(cfg.num_layers):
        layer = {name[len("layers.") :]: host(name, i) for name in flat if name.startswith("layers.")}
        for rel, tensor in hf_tensors_of_layer(cfg, layer).items():
            yield f"{_HF_PREFIX}{i}.{rel}", tensor
    yield "model.norm.weight", host("final_norm.scale")
    yield "lm_head.weight", host("lm_head").T


def _write_shards(out: Path, tensors: Iterator[tuple[str, np.ndarray]]) -> None:
    """Write tensors in order into shards of at most SHARD_BYTES, plus the index HF expects."""
    groups: list[list[str]] = []
    current: dict[str, np.ndarray] = {}

    def flush() -> None:
        arrays = {k: jnp.asarray(np.ascontiguousarray(v)) for k, v in current.items()}
        save_file(arrays, str(out / f".shard-{len(groups)}.tmp"), metadata={"format": "pt"})
        groups.append(list(current))
        current.clear()

    for name, tensor in tensors:
        if current and sum(t.nbytes for t in current.values()) + tensor.nbytes > SHARD_BYTES:
            flush()
        current[name] = tensor
    flush()
    total = len(groups)
    weight_map = {}
    for i, names in enumerate(groups):
        final = "model.safetensors" if total == 1 else f"model-{i + 1:05d}-of-{total:05d}.safetensors"
        (out / f".shard-{i}.tmp").rename(out / final)
        (out / final).chmod(0o644)  # world-readable like config.json, whatever the writer's umask did
        weight_map.update({name: final for name in names})
    if total > 1:
        index = {"metadata": {}, "weight_map": weight_map}
        (out / "model.safetensors.index.json").write_text(json.dumps(index, indent=2))

"""Model directories: `model.yaml` (the `ModelConfig`) + `params/` (an orbax checkpoint).

This is what `phijax convert from-hf` writes and what training starts from with
`checkpoint.init_from`; a training checkpoint step stores its `params` item in the same layout
(nested dict of the model's parameters, layers stacked), so either can be given to `init_from`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

import jax
import numpy as np
import orbax.checkpoint as ocp
import yaml
from flax import nnx

from phijax.config.loader import build_section, relative_note, to_dict
from phijax.errors import CheckpointError, ConfigError
from phijax.model.config import ModelConfig
from phijax.model.phi4 import Phi4

log = logging.getLogger(__name__)
T = TypeVar("T")
MODEL_FILE = "model.yaml"
PARAMS_DIR = "params"
HF_CONFIG = "config.json"


@dataclass(frozen=True)
class ModelSource:
    """Where a model's weights are, resolved from what a user typed.

    kind: `phijax` (a directory holding `params/`: a model directory or a training checkpoint step) or
    `hf` (a Hugging Face `Phi3ForCausalLM` directory: config.json + *.safetensors).
    step: the training step when `path` is a run's checkpoint step, else None.
    """

    kind: Literal["phijax", "hf"]
    path: Path
    step: int | None = None


def resolve_checkpoint(path: str | Path, *, what: str = "checkpoint") -> ModelSource:
    """The one rule for naming a model everywhere (generate, pts, eval, convert, `checkpoint.init_from`).

    Accepted, in this order: a directory holding `params/` (a model directory or a checkpoint step), a
    HF directory (`config.json` + safetensors), or a run directory (its newest step under `checkpoints/`).
    `what` names the setting in the error message (e.g. `checkpoint.init_from`).
    """
    here = Path(path)
    if not here.is_dir():
        raise CheckpointError(
            f"{what} {path} not found{relative_note(path)}: pass a model directory, a checkpoint step, a run directory "
            "or a Hugging Face model directory"
        )
    if (here / PARAMS_DIR).is_dir():
        return ModelSource("phijax", here, int(here.name) if here.name.isdigit() else None)
    if (here / HF_CONFIG).is_file() and any(here.glob("*.safetensors")):
        return ModelSource("hf", here)
    return run_steps(here, what=what)[0]


def run_steps(run_dir: Path, *, what: str = "checkpoint") -> list[ModelSource]:
    """A run directory's saved steps, newest first (loaders fall back along it past a damaged step)."""
    steps = [d for d in (run_dir / "checkpoints").glob("*") if d.name.isdigit() and (d / PARAMS_DIR).is_dir()]
    if not steps:
        raise CheckpointError(
            f"{what} {run_dir} holds neither params/, config.json + *.safetensors, nor checkpoints/<step>/params: "
            "pass a model directory (phijax convert from-hf), a checkpoint step, a run directory with a saved step "
            "or a Hugging Face model directory"
        )
    return [ModelSource("phijax", d, int(d.name)) for d in sorted(steps, key=lambda d: -int(d.name))]


def load_newest_intact(
    path: str | Path, load: Callable[[ModelSource], T], *, what: str = "checkpoint"
) -> tuple[T, ModelSource]:
    """`load(source)` of what `path` names; for a run directory, the newest step that loads.

    A damaged step (an interrupted save, a truncated file) is skipped with a warning naming it, as
    training's resume does; a model directory or step named explicitly is never replaced by another.
    """
    here = Path(path)
    candidates = run_steps(here, what=what) if _is_run_dir(here) else [resolve_checkpoint(here, what=what)]
    for i, source in enumerate(candidates):
        try:
            return load(source), source
        except CheckpointError as err:
            if i + 1 == len(candidates):
                raise
            log.warning(
                "step %d of %s cannot be read (%s); using step %d", source.step, here, err, candidates[i + 1].step
            )
    raise AssertionError("unreachable: candidates is never empty")


def _is_run_dir(path: Path) -> bool:
    return path.is_dir() and not (path / PARAMS_DIR).is_dir() and (path / "checkpoints").is_dir()


def find_tokenizer(source: ModelSource, vocab_size: int) -> str | Path:
    """The tokenizer that belongs to a model: a tokenizer.json beside (or above) the weights, the run's
    `data.tokenizer`, or Phi-4's for a model with Phi-4's vocabulary (100,352)."""
    for directory in (source.path, *source.path.absolute().parents):
        if (directory / "tokenizer.json").is_file():
            return directory / "tokenizer.json"
        config = directory / "config.yaml"
        if config.is_file():
            named = ((yaml.safe_load(config.read_text()) or {}).get("data") or {}).get("tokenizer")
            if named:
                return named
    if vocab_size == 100_352:
        return "phi4"
    raise CheckpointError(
        f"no tokenizer found for {source.path}: name one (a tokenizer.json, a HF directory or `phi4`)"
    )


def nest(flat: dict[str, Any]) -> dict[str, Any]:
    """{"a.b": x} → {"a": {"b": x}}."""
    out: dict[str, Any] = {}
    for dotted, value in flat.items():
        node = out
        *parents, leaf = dotted.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return out


def save_model_dir(params: dict[str, Any], cfg: ModelConfig, path: str | Path) -> Path:
    """Write nested `params` (arrays) and `cfg` as a model directory; refuses a non-empty `path`."""
    out = Path(path).absolute()
    if out.exists() and any(out.iterdir()):
        raise CheckpointError(f"{out} exists and is not empty: write to a new directory (nothing was overwritten)")
    out.mkdir(parents=True, exist_ok=True)
    # Uncompressed: weights barely compress, and the compressor buffers each array's whole output,
    # which would add most of a second copy of the weights to the host memory of a conversion.
    with ocp.Checkpointer(ocp.PyTreeCheckpointHandler(use_compression=False)) as checkpointer:
        checkpointer.save(out / PARAMS_DIR, args=ocp.args.PyTreeSave(params))
    (out / MODEL_FILE).write_text(yaml.safe_dump({"model": to_dict(cfg)}, sort_keys=False))
    return out


def read_model_config(path: str | Path) -> ModelConfig:
    """The `ModelConfig` stored next to a model directory's params (model.yaml or a run's config.yaml)."""
    here = Path(path).absolute()
    for directory in (here, *here.parents):
        for name in (MODEL_FILE, "config.yaml"):
            file = directory / name
            if file.is_file():
                try:
                    return build_section(ModelConfig, yaml.safe_load(file.read_text())["model"], "model")
                except (ConfigError, KeyError, TypeError) as err:
                    raise CheckpointError(f"{file} does not hold a valid `model` section: {err}") from None
    raise CheckpointError(
        f"no {MODEL_FILE} or config.yaml found at or above {path}{relative_note(path)}: "
        "pass a directory written by phijax"
    )


def restore_params(path: str | Path, target: Any) -> Any:
    """Restore the `params` item under `path` into `target`'s shapes, dtypes and shardings.

    Two different failures, told apart: saved shapes that differ from `target` (a different model
    config) and files that cannot be read (an interrupted save, a truncated copy).
    """
    params_dir = Path(path).absolute() / PARAMS_DIR
    if not params_dir.is_dir():
        raise CheckpointError(f"{path} has no {PARAMS_DIR}/ directory: pass a model directory or checkpoint step")
    with ocp.StandardCheckpointer() as checkpointer:
        try:
            saved = checkpointer.metadata(params_dir).item_metadata.tree
        except Exception as err:  # orbax/tensorstore raise many types for missing or cut-short files
            raise _damaged(params_dir, err) from None
        _check_shapes(params_dir, saved, target)
        try:
            return checkpointer.restore(params_dir, target)
        except Exception as err:
            raise _damaged(params_dir, err) from None


def _check_shapes(params_dir: Path, saved: Any, target: Any) -> None:
    """CheckpointError naming the first parameter whose saved shape differs from the model config's."""
    saved_flat = dict(_flat_items(saved))
    for name, want in _flat_items(target):
        have = saved_flat.get(name)
        if have is None or tuple(have.shape) != tuple(want.shape):
            found = "missing" if have is None else f"shape {tuple(have.shape)}"
            raise CheckpointError(
                f"{params_dir} does not match the model config: `{name}` is {found}, the config "
                f"expects {tuple(want.shape)}; pass the matching model config or checkpoint"
            )


def _flat_items(tree: Any, prefix: str = "") -> list[tuple[str, Any]]:
    if isinstance(tree, dict):
        return [item for key, value in tree.items() for item in _flat_items(value, f"{prefix}{key}.")]
    return [(prefix.rstrip("."), tree)]


def _damaged(params_dir: Path, err: Exception) -> CheckpointError:
    first = (str(err).strip().splitlines() or [type(err).__name__])[0][:160]
    return CheckpointError(f"{params_dir} is corrupt or truncated ({first}): re-save it, or pass another step")


def load_model_dir(path: str | Path) -> Phi4:
    """The model stored in a model directory, on the default device, in its config's param_dtype."""
    cfg = read_model_config(path)
    model = nnx.eval_shape(lambda: Phi4(cfg, rngs=nnx.Rngs(0)))
    # An explicit device: a training step saved sharded over a mesh restores onto this one device.
    device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    abstract = jax.tree.map(
        lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=device), nnx.to_pure_dict(nnx.state(model, nnx.Param))
    )
    restored = restore_params(path, abstract)
    params = nnx.state(model, nnx.Param)
    nnx.replace_by_pure_dict(params, jax.tree.map(np.asarray, restored))
    nnx.update(model, params)
    return model

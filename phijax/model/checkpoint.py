"""Model directories: `model.yaml` (the `ModelConfig`) + `params/` (an orbax checkpoint).

This is what `phijax convert from-hf` writes and what training starts from with
`checkpoint.init_from`; a training checkpoint step stores its `params` item in the same layout
(nested dict of the model's parameters, layers stacked), so either can be given to `init_from`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
import yaml
from flax import nnx

from phijax.config import ConfigError, ModelConfig, config_from_dict, to_dict
from phijax.errors import CheckpointError
from phijax.model.phi4 import Phi4

MODEL_FILE = "model.yaml"
PARAMS_DIR = "params"


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
                    return config_from_dict({"model": yaml.safe_load(file.read_text())["model"]}).model
                except (ConfigError, KeyError, TypeError) as err:
                    raise CheckpointError(f"{file} does not hold a valid `model` section: {err}") from None
    raise CheckpointError(f"no {MODEL_FILE} or config.yaml found at or above {path}: pass a directory written by phijax")


def restore_params(path: str | Path, target: Any) -> Any:
    """Restore the `params` item under `path` into `target`'s shapes, dtypes and shardings."""
    params_dir = Path(path).absolute() / PARAMS_DIR
    if not params_dir.is_dir():
        raise CheckpointError(f"{path} has no {PARAMS_DIR}/ directory: pass a model directory or checkpoint step")
    with ocp.StandardCheckpointer() as checkpointer:
        try:
            return checkpointer.restore(params_dir, target)
        except (ValueError, KeyError) as err:
            first = str(err).splitlines()[0][:200]
            raise CheckpointError(f"{params_dir} does not match the model config: {first}") from None


def load_model_dir(path: str | Path) -> Phi4:
    """The model stored in a model directory, on the default device, in its config's param_dtype."""
    cfg = read_model_config(path)
    model = nnx.eval_shape(lambda: Phi4(cfg, rngs=nnx.Rngs(0)))
    # An explicit device: a training step saved sharded over a mesh restores onto this one device.
    device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    abstract = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=device),
                            nnx.to_pure_dict(nnx.state(model, nnx.Param)))
    restored = restore_params(path, abstract)
    params = nnx.state(model, nnx.Param)
    nnx.replace_by_pure_dict(params, jax.tree.map(np.asarray, restored))
    nnx.update(model, params)
    return model

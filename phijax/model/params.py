"""Parameter counts of a model config, from shapes alone (`nnx.eval_shape`: nothing allocated)."""

from __future__ import annotations

import math

import jax
from flax import nnx

from phijax.model.config import ModelConfig
from phijax.model.phi4 import Phi4

# Which component each parameter path belongs to, by its first matching fragment.
_COMPONENTS = (
    ("embed", "embedding"),
    ("lm_head", "lm_head"),
    (".attn.", "attention"),
    (".mlp.", "mlp"),
    ("norm", "norms"),
)


def abstract_model(cfg: ModelConfig) -> Phi4:
    """The model with `jax.ShapeDtypeStruct` leaves instead of arrays."""
    return nnx.eval_shape(lambda: Phi4(cfg, rngs=nnx.Rngs(0)))


def count_parameters(cfg: ModelConfig) -> dict[str, int]:
    """Parameters per component (embedding, attention, mlp, norms, lm_head) and `total`."""
    counts = {name: 0 for _, name in _COMPONENTS}
    state = nnx.state(abstract_model(cfg), nnx.Param)
    for path, leaf in jax.tree_util.tree_leaves_with_path(state):
        dotted = "." + ".".join(str(getattr(k, "key", k)) for k in path) + "."
        component = next(name for frag, name in _COMPONENTS if frag in dotted)
        counts[component] += math.prod(leaf.shape)
    counts["total"] = sum(counts.values())
    return counts


def format_counts(preset: str, counts: dict[str, int]) -> str:
    """A two-column table of the counts, total last."""
    width = max(len(f"{n:,}") for n in counts.values())
    lines = [f"parameters of {preset}:"]
    lines += [f"  {name:<10} {n:>{width},}" for name, n in counts.items()]
    return "\n".join(lines)

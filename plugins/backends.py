"""Built-in policy backend: `local`, a phijax or Hugging Face checkpoint loaded sharded on the mesh.

    policy: {backend: local, checkpoint: runs/sft, tokenizer: phi4, batch_size: 32, rows_per_pass: 16}

The factory is a thin layer over `phijax.inference.policy.load_policy`; registering it costs nothing
(jax and the model are imported when a config selects it).
"""

from __future__ import annotations

from typing import Any

from phijax.errors import PhijaxError
from phijax.plugins import hookimpl

LOCAL_OPTIONS = ("checkpoint", "tokenizer", "batch_size", "rows_per_pass")


def local(*, mesh: Any, checkpoint: str | None = None, tokenizer: str | None = None, **options: Any) -> Any:
    """A `LocalPolicy` (a `TokenPolicy`) of `checkpoint`, its parameters sharded over `mesh` (a `MeshConfig`).

    options: `batch_size` (rows per generation call), `rows_per_pass` (packed rows per log-likelihood pass).
    """
    unknown = sorted(set(options) - set(LOCAL_OPTIONS))
    if unknown:
        raise PhijaxError(
            f"policy.{unknown[0]} is not an option of the local backend (options: {', '.join(LOCAL_OPTIONS)})"
        )
    if not checkpoint:
        raise PhijaxError("policy.checkpoint is not set: name a model dir, checkpoint step, run dir or HF directory")
    from phijax.inference.policy import load_policy

    return load_policy(checkpoint, tokenizer=tokenizer, mesh=mesh, **options)


@hookimpl
def phijax_register_backends(register) -> None:
    register("local", local)

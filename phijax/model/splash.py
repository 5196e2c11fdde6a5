"""Splash attention: the Pallas TPU flash-attention kernel, for training on TPU (`model.attention=splash`).

XLA's attention materialises each row's [heads, seq, seq] fp32 scores, which at midtraining's 16K
context is 40 x 16,384² x 4 bytes = 43 GB a sequence. Splash attention streams key/value blocks
through the softmax instead, and skips whole blocks that the causal mask or the packed-document
mask (segment ids) rule out. Grouped-query heads are native to the kernel (query heads i·G..i·G+G-1
read key/value head i), so keys and values are never repeated.

The kernel runs per device: under the batch sharding of `phijax.parallel.mesh.batch_sharded_activations`
it is wrapped in `shard_map`, batch over the batch axes and heads over `tensor`, so each device
attends over its own rows and heads. For devices other than TPUs it runs in Pallas's interpreter
(slow; what the CPU tests check it with); the mesh's devices decide, so a TPU step compiled ahead of
time on a CPU host gets the real kernel.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax.experimental.pallas.ops.tpu.splash_attention import splash_attention_kernel as splash
from jax.experimental.pallas.ops.tpu.splash_attention import splash_attention_mask as masks
from jax.sharding import PartitionSpec

from phijax.errors import PhijaxError
from phijax.parallel.mesh import current_batch_sharding

BLOCK = 512  # query and key/value tile; MaxText's choice for v5p at 4K-16K sequences
LANES = 128  # the kernel's tiles are multiples of the TPU's 128 lanes


def splash_attention(q: jax.Array, k: jax.Array, v: jax.Array, segment_ids: jax.Array | None) -> jax.Array:
    """Causal attention that keeps packed documents apart.

    q: [batch, seq, heads, head_dim]; k, v: [batch, seq, kv_heads, head_dim]; segment_ids:
    [batch, seq] or None (one document a row). Returns q's shape and dtype.
    """
    if q.shape[1] % LANES:
        raise PhijaxError(
            f"model.attention=splash needs a sequence length divisible by {LANES}, got "
            f"{q.shape[1]}; change train.seq_len or use model.attention=xla"
        )
    sharding = current_batch_sharding()
    # The devices the step is compiled for, not this process's backend: AOT compiles for TPU run on CPU hosts.
    on_tpu = (sharding.mesh.devices.flat[0].platform if sharding else jax.default_backend()) == "tpu"
    local = functools.partial(_local, interpret=not on_tpu)
    if sharding is None:
        return local(q, k, v, segment_ids)
    batch = sharding.spec[0]
    heads = PartitionSpec(batch, None, "tensor", None)
    rows = PartitionSpec(batch, None)
    if segment_ids is None:
        run = jax.shard_map(
            lambda q, k, v: local(q, k, v, None),
            mesh=sharding.mesh,
            in_specs=(heads, heads, heads),
            out_specs=heads,
            check_vma=False,
        )
        return run(q, k, v)
    run = jax.shard_map(
        local, mesh=sharding.mesh, in_specs=(heads, heads, heads, rows), out_specs=heads, check_vma=False
    )
    return run(q, k, v, segment_ids)


def _local(q: jax.Array, k: jax.Array, v: jax.Array, segment_ids: jax.Array | None, *, interpret: bool) -> jax.Array:
    """The kernel over one device's rows and heads: [batch, seq, heads, dim] in and out."""
    kernel = _kernel(q.shape[1], q.shape[2], interpret)

    def to_heads(x: jax.Array) -> jax.Array:  # the kernel takes [heads, seq, dim] per row
        return jnp.swapaxes(x, 1, 2)

    def per_row(q: jax.Array, k: jax.Array, v: jax.Array, ids: jax.Array) -> jax.Array:
        return kernel(q, k, v, segment_ids=splash.SegmentIds(q=ids, kv=ids))

    scaled = q * jnp.asarray(q.shape[-1] ** -0.5, q.dtype)  # the kernel does not scale
    if segment_ids is None:
        out = jax.vmap(kernel)(to_heads(scaled), to_heads(k), to_heads(v))
    else:
        out = jax.vmap(per_row)(to_heads(scaled), to_heads(k), to_heads(v), segment_ids)
    return to_heads(out)


@functools.cache
def _kernel(seq_len: int, heads: int, interpret: bool) -> splash.SplashAttentionKernel:
    """A causal kernel for `heads` query heads at `seq_len` (built once per shape: its block masks are
    computed on the host)."""
    block = next(b for b in (BLOCK, BLOCK // 2, LANES) if seq_len % b == 0)  # seq_len: a multiple of LANES
    sizes = splash.BlockSizes(
        block_q=block,
        block_kv=block,
        block_kv_compute=block,
        block_q_dkv=block,
        block_kv_dkv=block,
        block_kv_dkv_compute=block,
        use_fused_bwd_kernel=True,
    )
    causal = masks.MultiHeadMask([masks.CausalMask((seq_len, seq_len)) for _ in range(heads)])
    with jax.ensure_compile_time_eval():  # concrete block masks, even when first built inside a trace
        return splash.make_splash_mha(causal, block_sizes=sizes, head_shards=1, q_seq_shards=1, interpret=interpret)

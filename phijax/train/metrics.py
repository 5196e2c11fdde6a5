"""Throughput and model-FLOPs utilisation (MFU) of training steps.

FLOPs of one trained token (forward + backward = 3 x forward, 2 FLOPs per multiply-add):

    flops_per_token = 6 · N_matmul  +  6 · L · S · H · D_h

N_matmul counts the parameters used in matrix multiplies (every parameter except the embedding
table, which is a lookup, and the RMSNorm scales); the LM head is included. The second term is
attention's two matmuls (QKᵀ and AV: 2 · 2·S·H·D_h FLOPs per token per layer forward, 12·S·H·D_h
with the backward pass), halved because causal attention needs only the lower triangle.
L: layers, S: sequence length, H: query heads, D_h: head dim.

    MFU = flops_per_token · tokens_per_second / (peak FLOP/s per device · devices)

Recomputation from remat is not counted (that would be hardware FLOPs utilisation).

The peak of an accelerator is its vendor's dense bf16 figure; a CPU has no such figure (and CPUs
differ: 2-core CI hosts have measured 0.18 and 0.46 TFLOP/s), so a CPU's peak is its f32 matmul
rate measured once per process (`matmul_seconds`).
"""

from __future__ import annotations

import functools
import time

import jax
import jax.numpy as jnp

from phijax.model.config import ModelConfig

# Dense bf16 peak TFLOP/s per device (vendor figures), by the start of `device.device_kind`.
PEAK_TFLOPS = {
    "NVIDIA H100": 989.0,
    "NVIDIA H200": 989.0,
    "NVIDIA A100": 312.0,
    "TPU v5p": 459.0,
    "TPU v5 lite": 197.0,
    "TPU v5e": 197.0,
    "TPU v4": 275.0,
    "TPU v6": 918.0,
}
CPU_PEAK_MATMUL = 1024  # the size of the square f32 product that measures a CPU's peak


def matmul_parameters(cfg: ModelConfig) -> int:
    """Parameters that take part in matrix multiplies (all but embedding table and norms)."""
    d, h, kv, hd, f = cfg.hidden_size, cfg.num_heads, cfg.num_kv_heads, cfg.head_dim, cfg.intermediate_size
    per_layer = d * (h + 2 * kv) * hd + h * hd * d + 3 * d * f
    return cfg.num_layers * per_layer + d * cfg.vocab_size


def flops_per_token(cfg: ModelConfig, seq_len: int) -> float:
    """Training FLOPs per token (see the module docstring for the formula)."""
    attention = 6 * cfg.num_layers * seq_len * cfg.num_heads * cfg.head_dim
    return 6 * matmul_parameters(cfg) + attention


def peak_flops(devices: list[jax.Device], per_device_tflops: float | None = None) -> float | None:
    """Peak FLOP/s of all `devices` together; None if the device kind is unknown and none is given."""
    if per_device_tflops is not None:
        return per_device_tflops * 1e12 * len(devices)
    kind = devices[0].device_kind
    if devices[0].platform == "cpu":
        return _cpu_peak_flops()  # one host, however many virtual devices it is split into
    for prefix, tflops in PEAK_TFLOPS.items():
        if kind.startswith(prefix):
            return tflops * 1e12 * len(devices)
    return None


def matmul_seconds(
    size: int, dtype: str = "float32", repeats: int = 5, device: jax.Device | None = None
) -> list[float]:
    """Seconds of each of `repeats` [size, size] @ [size, size] products (2·size³ FLOPs) on `device`
    (default: the first of jax's default backend), after one untimed product that compiles."""
    device = device or jax.devices()[0]
    ka, kb = jax.random.split(jax.random.key(0))
    a, b = (jax.device_put(jax.random.normal(k, (size, size), jnp.dtype(dtype)), device) for k in (ka, kb))
    product = jax.jit(jnp.matmul)
    product(a, b).block_until_ready()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        product(a, b).block_until_ready()
        times.append(time.perf_counter() - start)
    return times


@functools.cache
def _cpu_peak_flops() -> float:
    """This host's f32 matmul FLOP/s, the best of a few products (measured once per process)."""
    return 2 * CPU_PEAK_MATMUL**3 / min(matmul_seconds(CPU_PEAK_MATMUL, device=jax.devices("cpu")[0]))


def mfu(cfg: ModelConfig, seq_len: int, tokens_per_s: float, total_peak_flops: float | None) -> float | None:
    """Model FLOPs utilisation in [0, 1] (None when the peak is unknown)."""
    if not total_peak_flops:
        return None
    return flops_per_token(cfg, seq_len) * tokens_per_s / total_peak_flops

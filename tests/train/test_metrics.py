"""MFU's parts: FLOPs per token counted by hand for the tiny preset, and the peaks MFU divides by."""

import jax

from phijax.model.config import preset_config
from phijax.train import metrics


def test_flops_per_token_of_tiny_counted_by_hand():
    cfg = preset_config("tiny")  # d 128, 8 heads over 2 kv heads of 16, MLP 448, 2 layers, vocab 1024
    per_layer = 128 * 8 * 16 + 2 * 128 * 2 * 16 + 8 * 16 * 128 + 3 * 128 * 448
    n_matmul = 2 * per_layer + 128 * 1024
    assert metrics.matmul_parameters(cfg) == n_matmul
    assert metrics.flops_per_token(cfg, 256) == 6 * n_matmul + 6 * 2 * 256 * 8 * 16


def test_a_cpu_peak_is_its_measured_matmul_rate_once_per_process():
    cpu = jax.devices("cpu")
    peak = metrics.peak_flops(cpu)
    assert 1e9 < peak < 1e15  # a real measurement, not a placeholder
    assert metrics.peak_flops(cpu[:1]) == peak  # the host's, however many devices, measured once


def test_a_given_peak_counts_every_device():
    assert metrics.peak_flops(jax.devices("cpu")[:4], per_device_tflops=2.0) == 8e12
    assert metrics.mfu(preset_config("tiny"), 256, 1000.0, None) is None

"""Direct preference optimisation: raise p(chosen) over p(rejected) relative to a reference model.

Phi-4 (PHI4.md § Post-training) runs two DPO rounds after SFT: round 1 on 250,297 Pivotal Token
Search pairs (single-token completions, `phijax pts`), round 2 on about 850K judge-guided pairs of
whole responses. β, the learning rate and the other settings are not stated. The loop is
`phijax.train.dpo_loop`; this module checks a config for it.
"""

from __future__ import annotations

import logging

from phijax.config import Config
from phijax.errors import ConfigError

log = logging.getLogger(__name__)


def validate(cfg: Config) -> None:
    """A DPO config needs pairs, a valid loss, and micro-batches of whole pairs."""
    dpo = cfg.dpo
    if not dpo.pairs:
        raise ConfigError("dpo.pairs is empty: name the pairs JSONL files, e.g. dpo.pairs=[runs/pts/pairs.jsonl]")
    if not dpo.beta > 0:
        raise ConfigError(f"dpo.beta ({dpo.beta}) must be > 0; 0.1 is usual")
    if not 0.0 <= dpo.label_smoothing < 0.5:
        raise ConfigError(f"dpo.label_smoothing ({dpo.label_smoothing}) must be in [0, 0.5)")
    if dpo.loss_type == "ipo" and dpo.label_smoothing:
        raise ConfigError("dpo.label_smoothing applies to the sigmoid loss only; set it to 0 for dpo.loss_type=ipo")
    if cfg.train.global_batch % cfg.train.grad_accum:
        raise ConfigError(f"train.global_batch ({cfg.train.global_batch} pairs) must be a multiple of "
                          f"train.grad_accum ({cfg.train.grad_accum})")
    if cfg.train.seq_len > cfg.model.max_seq_len:
        raise ConfigError(f"train.seq_len ({cfg.train.seq_len}) exceeds model.max_seq_len ({cfg.model.max_seq_len})")
    if not cfg.checkpoint.init_from:
        log.warning("DPO from a random initialisation: set checkpoint.init_from=RUN_DIR (the SFT model)")

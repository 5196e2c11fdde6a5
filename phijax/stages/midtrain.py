"""Long-context midtraining: continue a pretraining checkpoint at 16K context, RoPE base 250K.

Phi-4 (PHI4.md § Midtraining): ~250B tokens, context 4K → 16K, RoPE base → 250,000, learning rate a
tenth of pretraining's peak, 30% new long documents / 70% recall of pretraining data. The values live
in configs/phi4-14b/midtrain.yaml; the code only insists on starting from a checkpoint.
"""

from __future__ import annotations

import logging

from phijax.config import Config
from phijax.errors import ConfigError
from phijax.stages import pretrain

log = logging.getLogger(__name__)


def validate(cfg: Config) -> None:
    """Midtraining must name the pretraining checkpoint it continues."""
    pretrain.validate(cfg)
    if not cfg.checkpoint.init_from:
        raise ConfigError("midtraining starts from pretraining: set checkpoint.init_from=RUN_DIR (or a checkpoint step)")
    if cfg.model.rope_theta < 250_000:
        log.warning("midtraining with rope_theta %s; phi-4 raised the RoPE base to 250,000", cfg.model.rope_theta)

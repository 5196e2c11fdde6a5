"""Pretraining: next-token loss on the packed data mixture, from a fresh initialisation."""

from __future__ import annotations

from phijax.config import Config
from phijax.errors import ConfigError


def validate(cfg: Config) -> None:
    """A pretraining config needs data and a sequence length the model can hold."""
    if not cfg.data.sources:
        raise ConfigError("data.sources is empty: name at least one source, e.g. data.sources=[{name: c, source: curriculum}]")
    if cfg.train.seq_len > cfg.model.max_seq_len:
        raise ConfigError(f"train.seq_len ({cfg.train.seq_len}) exceeds model.max_seq_len ({cfg.model.max_seq_len})")

"""Configs: one generic loader for every command's job root.

Each command has its own root (a frozen dataclass: `phijax.train.config.TrainJob`, `phijax.pts.config.PTSJob`,
...) built from sections that live beside their feature (`phijax.model.config`, `phijax.parallel.config`,
`phijax.data.config`, ...); `phijax.config.jobs` lists them. Importing this package does not import jax.
"""

from __future__ import annotations

from phijax.config.loader import (
    COMMAND_LINE,
    build_section,
    config_from_dict,
    dump_config,
    load_job,
    parse_override,
    to_dict,
    valid_keys,
    write_config,
)
from phijax.errors import ConfigError

__all__ = [
    "COMMAND_LINE",
    "ConfigError",
    "build_section",
    "config_from_dict",
    "dump_config",
    "load_job",
    "parse_override",
    "to_dict",
    "valid_keys",
    "write_config",
]
